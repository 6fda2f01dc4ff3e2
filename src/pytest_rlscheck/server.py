"""Server lifecycle: a throw-away local PostgreSQL, or an existing one given by a DSN.

The local server is started through pytest-postgresql's executor (its pg_ctl command line),
tuned for tests, with its unix socket in a private temp directory. As root (CI containers)
``initdb``/``pg_ctl``/``postgres`` refuse to run, so every server process runs as an
unprivileged OS account that owns the temp directory.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import hmac
import os
import pwd
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import psycopg
from mirakuru.base import ENV_UUID
from psycopg import conninfo as pg_conninfo
from psycopg import sql
from pytest_postgresql.executors import PostgreSQLExecutor

from .binaries import PgBinaries
from .extensions import ExtensionPlan, StandIn
from .installation import cache_directory, private_installation, prune_cache, touch
from .errors import PrivilegeError, RlscheckWarning, ServerError
from .reaper import Reaper, kill_server_processes

__all__ = ["ExternalServer", "InitialData", "LocalServer", "Server", "ServerFiles", "server_account", "start_server"]

#: Settings for a server whose data is thrown away: durability off, no JIT noise in plans.
TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "jit": "off",
    "max_connections": "200",
    # WAL the cluster keeps for reuse after a checkpoint: the least there can be (two of
    # its 1 MB segments), so that a data directory copied into the template cache is small
    "min_wal_size": "2MB",
}
#: The socket's name (``.s.PGSQL.5432``); the directory it is in is the run's own.
PORT = 5432
#: Seconds to wait for a --rlscheck-dsn server to answer, unless the DSN says otherwise.
DSN_CONNECT_TIMEOUT = 10
SCRAM_ITERATIONS = 16
#: The throw-away cluster's bootstrap superuser, named as Supabase names its own: the role
#: ``postgres`` is the project's, without superuser (see :mod:`.template`).
SUPERUSER = "supabase_admin"
MAINTENANCE_DB = "postgres"
PG_USER_ENV = "RLSCHECK_PG_USER"
#: ``RLSCHECK_CLUSTER_CACHE=0``: initdb for every run instead of copying the cached cluster.
CLUSTER_CACHE_ENV = "RLSCHECK_CLUSTER_CACHE"
#: Bumped when what goes into a cached cluster changes.
CLUSTER_LAYOUT = "3"
#: WAL segments of 1 MB (initdb's default is 16): a copied cluster carries less WAL.
WAL_SEGMENT_MB = 1
#: Next to a cached cluster: its superuser's password (mode 0600, as private as the cluster).
PASSWORD_SUFFIX = ".password"


@dataclass(frozen=True)
class ServerFiles:
    """Where a throw-away server lives: enough to tell, from any process of the run (an
    xdist worker too), whether it still runs and what its log says."""

    pg_ctl: str
    datadir: str
    logfile: str
    run_as: tuple[int, int] | None = None

    def running(self) -> bool:
        kwargs: dict[str, Any] = {"cwd": "/"}
        if self.run_as:
            kwargs |= {"user": self.run_as[0], "group": self.run_as[1], "extra_groups": []}
        try:
            result = subprocess.run([self.pg_ctl, "status", "-D", self.datadir], capture_output=True, timeout=30,
                                    **kwargs)
        except (OSError, subprocess.SubprocessError):
            return False
        return result.returncode == 0

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:]).rstrip() or "(empty)"
        except OSError:
            return "(no log was written)"

    def lost_report(self) -> str:
        running = self.running()
        # a server told to shut down still answers pg_ctl status for a moment: wait for it
        deadline = time.monotonic() + 10
        while running and _SHUTTING_DOWN.search(self.log_tail(5)) and time.monotonic() < deadline:
            time.sleep(0.1)
            running = self.running()
        state = "is still running" if running else "is no longer running"
        return f"The throw-away server {state}. The end of its log ({self.logfile}):\n{self.log_tail()}"


_SHUTTING_DOWN = re.compile(r"shutdown request|terminating any other active server processes|shutting down")


class Server:
    """What the rest of the plugin needs from a server, local or existing."""

    description: str
    server_version: int
    user: str
    _base: dict[str, Any]
    maintenance_db: str

    def conninfo(self, dbname: str) -> str:
        return pg_conninfo.make_conninfo(**{**self._base, "dbname": dbname})

    def connect(self, dbname: str, *, autocommit: bool = True, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo(dbname), autocommit=autocommit, **kwargs)

    def admin(self) -> psycopg.Connection[Any]:
        return self.connect(self.maintenance_db)

    def stop(self) -> None:
        raise NotImplementedError

    def lost_report(self) -> str:
        """What can be said about the server after a connection to it broke."""
        return "The server closed the connection; its own log says why."


def start_server(
    dsn: str | None,
    plan: ExtensionPlan,
    reaper: Reaper,
    settings: Sequence[tuple[str, str]] = (),
    major: int | None = None,
    initial: InitialData | None = None,
) -> Server:
    """The --rlscheck-dsn server, or a throw-away one of the installation ``plan`` chose,
    with its stand-ins (started from a copy of ``initial``, a cached template's cluster)."""
    if dsn:
        return ExternalServer(dsn)
    assert plan.binaries is not None
    binaries = plan.binaries
    if major is not None and binaries.major != major:
        warnings.warn(RlscheckWarning(
            f"rlscheck: PostgreSQL {major} was asked for ([db] major_version) but {binaries.describe()} is used"
        ), stacklevel=2)
    return LocalServer(binaries, reaper, settings=settings, stand_ins=plan.stood_in, initial=initial)


@dataclass(frozen=True)
class InitialData:
    """A stopped cluster for a server to start from (a copy of it), and the password its
    superuser has there."""

    datadir: Path
    password: str


@dataclass(frozen=True)
class _Setup:
    """What the plugin adds to pytest-postgresql's executor: the OS account (uid, gid) every
    server process runs as, a directory that account can enter, and the cached cluster."""

    run_as: tuple[int, int] | None
    cwd: str
    timeout: float
    settings: tuple[tuple[str, str], ...] = ()
    cluster_cache: Path | None = None
    #: A stopped cluster to start from (a cached template), copied as is.
    initial_data: Path | None = None
    track_dir: Any = lambda path: None
    forget_dir: Any = lambda path: None


class _StartFailed(Exception):
    """``pg_ctl start`` failed or did not return."""


class _Executor(PostgreSQLExecutor):
    """pytest-postgresql's executor, through its public surface: its ``pg_ctl start`` command
    line (``command_parts``), its environment (``envvars``) and its :meth:`init_directory`,
    :meth:`start`, :meth:`running` and :meth:`stop`, overridden so that every pg_ctl call runs
    as the server's account (``rlscheck.run_as``), the cluster asks every connection for a
    password, and the server listens on no TCP port: it is up when ``pg_ctl start -w``
    exits 0 (pg_ctl waits for the server to accept connections)."""

    def __init__(self, *, rlscheck: _Setup, **kwargs: Any) -> None:
        super().__init__(timeout=int(rlscheck.timeout), **kwargs)
        self.rlscheck = rlscheck

    def _environment(self) -> dict[str, str]:
        """pytest-postgresql's environment (its locale) without mirakuru's mark: mirakuru's
        exit hook, in every Python process that imported it, SIGKILLs the processes whose
        mark contains that process's pid as a substring (another test process ending, a
        pytester run or an xdist worker, killed our postmaster). The reaper and :meth:`stop`
        end the server instead."""
        return {name: value for name, value in self.envvars.items() if name not in (ENV_UUID, "PGDATA")}

    def _as_user(self) -> dict[str, Any]:
        run_as = self.rlscheck.run_as
        if run_as is None:
            return {"cwd": self.rlscheck.cwd}
        return {"user": run_as[0], "group": run_as[1], "extra_groups": [], "cwd": self.rlscheck.cwd}

    def start(self) -> _Executor:
        """The data directory, then pytest-postgresql's ``pg_ctl start`` command line run to
        its end as the server's account. The postmaster it leaves is in a session of its own
        (a Ctrl-C in the terminal does not reach it)."""
        self.init_directory()
        try:
            result = subprocess.run(
                self.command_parts, env=self._environment(), capture_output=True, text=True,
                timeout=self.rlscheck.timeout, start_new_session=True, **self._as_user(),
            )
        except subprocess.TimeoutExpired:
            raise _StartFailed(f"pg_ctl start did not return within {self.rlscheck.timeout:g} s") from None
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise _StartFailed(f"pg_ctl start exited with code {result.returncode}" + (f": {output}" if output else ""))
        return self

    def init_directory(self) -> None:
        """The data directory: a copy of a cached template's cluster (which has the settings
        already), or of the installation's initdb'd cluster (made once, in the cache), or
        initdb here without a cache. The superuser's password is the one the copied cluster
        has: the server changes it to the run's own on its first connection."""
        if os.path.isfile(os.path.join(self.datadir, "PG_VERSION")):
            return
        if self.rlscheck.initial_data is not None:
            self._run_as_account(["cp", "-a", "--reflink=auto", "--", str(self.rlscheck.initial_data), self.datadir],
                                 "copying the cached template's cluster")
            return
        template = self._cached_cluster() if self.rlscheck.cluster_cache is not None else None
        if template is None:
            self._initdb(self.datadir, self.password or "", self.rlscheck.cwd)
        else:
            self._run_as_account(["cp", "-a", "--reflink=auto", "--", str(template), self.datadir],
                                 "copying the initdb'd cluster")
        if self.rlscheck.settings:  # in the configuration file: no shell quoting between them and postgres
            with open(os.path.join(self.datadir, "postgresql.conf"), "a", encoding="utf-8") as conf:
                conf.write("\n# pytest-rlscheck: server_settings / --rlscheck-pg-setting\n")
                for name, value in self.rlscheck.settings:
                    conf.write(f"{name} = '{value.replace(chr(39), chr(39) * 2)}'\n")

    def initial_password(self) -> str:
        """The password the superuser has in the data directory as it starts."""
        if self.rlscheck.initial_data is not None or self.rlscheck.cluster_cache is None:
            return self.password or ""
        return _read_password(self._cached_cluster())

    def _initdb(self, datadir: str, password: str, scratch: str) -> None:
        """initdb with scram-sha-256 for every connection; the password file (the verifier
        only) lives in ``scratch`` only while initdb reads it."""
        pwfile = os.path.join(scratch, "pwfile")
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(scram_verifier(password))
            if self.rlscheck.run_as:
                os.chown(pwfile, *self.rlscheck.run_as)
            options = " ".join(shlex.quote(option) for option in self._initdb_options(pwfile))
            self._run_as_account([self.executable, "initdb", "--pgdata", datadir, "-o", options], "initdb")
        finally:
            os.unlink(pwfile)

    def _initdb_options(self, pwfile: str) -> list[str]:
        return [f"--username={self.user}", "--auth=scram-sha-256", f"--pwfile={pwfile}",
                f"--wal-segsize={WAL_SEGMENT_MB}"]

    def _cached_cluster(self) -> Path:
        """The installation's initdb'd cluster in the cache, made on first use, owned by the
        server's account (mode 0700). Its superuser's password is random, kept next to it
        (mode 0600: readable by whoever can read the cluster itself); every run changes it
        to its own as it first connects."""
        setup = self.rlscheck
        assert setup.cluster_cache is not None
        key = hashlib.sha256(
            "\0".join([
                CLUSTER_LAYOUT, os.path.realpath(self.executable), file_identity(self.executable),
                file_identity(os.path.join(os.path.dirname(self.executable), "postgres")),
                " ".join(self._initdb_options("PWFILE")), str(setup.run_as), repr(sorted(
                    (name, value) for name, value in self._environment().items()
                    if name.startswith("LC_") or name in ("LANG", "LANGUAGE", "TZ", "PGTZ")  # what initdb records
                )),
            ]).encode()
        ).hexdigest()[:16]
        if setup.run_as:  # the server's account copies from it (a 0700 one of root's it cannot enter)
            os.chmod(setup.cluster_cache, 0o755)
        target = setup.cluster_cache / f"cluster-{key}"
        if (target / "PG_VERSION").is_file() and _has_password(target):
            touch(target)
            touch(Path(f"{target}{PASSWORD_SUFFIX}"))
            return target
        if target.exists():  # its password is gone: of no use to anyone
            shutil.rmtree(target, ignore_errors=True)
        prune_cache(setup.cluster_cache)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=setup.cluster_cache))
        setup.track_dir(str(staging))
        try:
            if setup.run_as:
                os.chown(staging, *setup.run_as)
            password = secrets.token_urlsafe(32)
            self._initdb(str(staging / "data"), password, str(staging))
            _write_password(staging / f"data{PASSWORD_SUFFIX}", password)
            try:  # the password first: a cluster without one next to it is not used
                os.rename(staging / f"data{PASSWORD_SUFFIX}", f"{target}{PASSWORD_SUFFIX}")
                os.rename(staging / "data", target)
            except OSError:
                if not ((target / "PG_VERSION").is_file() and _has_password(target)):  # not another run's rename
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            # an initdb interrupted meanwhile (Ctrl-C, SIGTERM) runs on under pg_ctl's shell,
            # which subprocess does not end: its argv names the staging directory
            kill_server_processes(str(staging))
            shutil.rmtree(staging, ignore_errors=True)
            setup.forget_dir(str(staging))
        return target

    def _run_as_account(self, command: list[str], what: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=self.rlscheck.timeout,
            env=self._environment(), **self._as_user(),
        )
        if result.returncode != 0:
            raise ServerError(
                f"rlscheck: {what} failed (exit {result.returncode}) for {self.datadir}:\n"
                f"{(result.stdout + result.stderr).strip()}"
            )
        return result.stdout + result.stderr

    def running(self) -> bool:
        if not os.path.exists(self.datadir):
            return False
        result = subprocess.run(
            [self.executable, "status", "-D", self.datadir],
            capture_output=True,
            timeout=self.rlscheck.timeout,
            **self._as_user(),
        )
        return result.returncode == 0

    def stop(self, sig: int | None = None, exp_sig: int | None = None, mode: str = "immediate") -> _Executor:
        """``pg_ctl stop -m immediate``: the data is thrown away, no checkpoint is needed
        (``mode="fast"``: a clean shutdown, for a data directory to be kept)."""
        subprocess.run(
            [self.executable, "stop", "-D", self.datadir, "-m", mode, "-w"],
            capture_output=True,
            timeout=self.rlscheck.timeout,
            **self._as_user(),
        )
        return self


class LocalServer(Server):
    """A throw-away server in a private temp directory, removed again by :meth:`stop`.

    Nobody else on the machine can connect: the server listens on no TCP port, only on a
    unix socket inside a directory of mode 0700 owned by the server's account, and every
    connection must give the run's random password (scram-sha-256)."""

    def __init__(
        self,
        binaries: PgBinaries,
        reaper: Reaper,
        *,
        settings: Sequence[tuple[str, str]] = (),
        stand_ins: Sequence[StandIn] = (),
        initial: InitialData | None = None,
    ) -> None:
        self.settings = tuple(settings)
        self.initial = initial
        self.stand_ins = tuple(stand_ins)
        self.user = SUPERUSER
        self.maintenance_db = MAINTENANCE_DB
        self._reaper = reaper
        self._executor: _Executor | None = None
        self.tmpdir = ""
        run_as = _unprivileged_account() if os.geteuid() == 0 else None
        self.run_as = run_as[1:] if run_as else None
        #: The superuser's password (the run's own once the server is up).
        self.password = ""
        unreachable = bool(self.run_as) and not _traversable(binaries.bindir / "postgres", *self.run_as)
        if unreachable or self.stand_ins:
            original = binaries
            binaries = private_installation(binaries, self.stand_ins, whole=unreachable)
            if self.run_as and not _traversable(binaries.bindir / "postgres", *self.run_as):
                raise ServerError(
                    f"rlscheck: {original.describe()} is not reachable by uid {self.run_as[0]}, which the server "
                    f"runs as, and neither is its copy in {binaries.bindir}. Install the server in a world-readable "
                    "place, or set RLSCHECK_CACHE_DIR to a directory that account can reach."
                )
        self.binaries = binaries
        if run_as and run_as[0] == "nobody":
            warnings.warn(RlscheckWarning(
                "rlscheck: the throw-away server runs as OS user nobody (there is no postgres account): every "
                "process of that account can reach its directory. Create a dedicated account (useradd --system "
                f"postgres) or set {PG_USER_ENV}."
            ), stacklevel=2)
        reaper.start()  # before anything exists that it may have to remove
        try:
            self._start(binaries)
        except BaseException:  # Ctrl-C or SIGTERM during initdb or pg_ctl start, too
            self.stop()
            raise

    def _start(self, binaries: PgBinaries) -> None:
        self.tmpdir = _private_dir(temp_parent(self.run_as), self._reaper)
        if self.run_as:
            os.chown(self.tmpdir, *self.run_as)
        self.datadir = os.path.join(self.tmpdir, "data")
        self.logfile = os.path.join(self.tmpdir, "postgresql.log")
        settings = {**TEST_SETTINGS, "listen_addresses": "''", "unix_socket_permissions": "0700"}
        options = " ".join(f"-c {key}={value}" for key, value in settings.items())
        self._reaper.track_server(binaries.pg_ctl, self.datadir, self.run_as)
        initial = self.initial
        self._executor = _Executor(
            rlscheck=_Setup(
                run_as=self.run_as, cwd=self.tmpdir, timeout=90, settings=self.settings,
                cluster_cache=_cluster_cache(), initial_data=initial.datadir if initial else None,
                track_dir=self._reaper.track_dir, forget_dir=self._reaper.forget_dir,
            ),
            executable=binaries.pg_ctl,
            host=self.tmpdir,
            port=PORT,
            datadir=self.datadir,
            unixsocketdir=self.tmpdir,
            logfile=self.logfile,
            startparams="-w -t 60",
            dbname=MAINTENANCE_DB,
            user=SUPERUSER,
            password=initial.password if initial else secrets.token_urlsafe(32),
            postgres_options=options,
        )
        try:
            self._executor.start()
            self.password = self._executor.initial_password()
        except (_StartFailed, OSError) as exc:
            raise ServerError(
                f"rlscheck: the throw-away server ({binaries.describe()}) did not start: {exc}\n"
                f"Server log:\n{self._log_tail()}"
            ) from None
        self._base = {"host": self.tmpdir, "port": PORT, "user": SUPERUSER, "password": self.password}
        owner = f", run as OS user {pwd.getpwuid(self.run_as[0]).pw_name}" if self.run_as else ""
        self.description = f"{binaries.describe()}, throw-away server{owner}"
        self.server_version = self._first_connection(deadline=time.monotonic() + 30, new_password=True)

    def _first_connection(self, deadline: float, new_password: bool = False) -> int:
        """The server version, over the unix socket (a moment after pg_ctl returns, under
        load, the socket file can still be missing); ``new_password``: the superuser gets
        the run's own password (a copied cluster came with the password of its cache)."""
        while True:
            try:
                with self.admin() as conn:
                    if new_password:
                        password = secrets.token_urlsafe(32)
                        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                            sql.Identifier(SUPERUSER), sql.Literal(scram_verifier(password))))
                        self.password = password
                        self._base = {**self._base, "password": password}
                    return conn.info.server_version
            except psycopg.OperationalError as exc:
                transient = any(t in str(exc) for t in ("No such file", "Connection refused", "starting up"))
                if not transient or time.monotonic() > deadline:
                    raise ServerError(
                        f"rlscheck: the throw-away server started but does not accept connections on "
                        f"{self.tmpdir}: {exc}\nServer log:\n{self._log_tail()}"
                    ) from None
                time.sleep(0.05)

    def snapshot(self, target: Path) -> None:
        """A copy of the data directory at ``target``, as a clean shutdown leaves it: the
        server stops, is copied, and starts again (connections to it are lost)."""
        executor = self._executor
        assert executor is not None
        executor.stop(mode="fast")
        try:
            if os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
                raise ServerError(f"rlscheck: the throw-away server did not stop for its data to be cached:\n"
                                  f"{self._log_tail()}")
            executor._run_as_account(["cp", "-a", "--reflink=auto", "--", self.datadir, str(target)],
                                     "copying the template's cluster into the cache")
        finally:
            try:
                executor.start()
            except (_StartFailed, OSError) as exc:
                raise ServerError(
                    f"rlscheck: the throw-away server did not start again after its data was cached: {exc}\n"
                    f"Server log:\n{self._log_tail()}"
                ) from None
            self._first_connection(deadline=time.monotonic() + 30)

    @property
    def files(self) -> ServerFiles:
        return ServerFiles(self.binaries.pg_ctl, self.datadir, self.logfile, self.run_as)

    def lost_report(self) -> str:
        return self.files.lost_report()

    def _log_tail(self, lines: int = 20) -> str:
        if not getattr(self, "logfile", None):
            return "(no log was written)"
        return self.files.log_tail(lines)

    def stop(self) -> None:
        """Stop the server and remove its directory, whatever state the start left them in."""
        executor, self._executor = self._executor, None
        if executor is not None:
            try:
                executor.stop()
            except Exception:  # noqa: BLE001 - what pg_ctl could not stop is killed below
                pass
        if not self.tmpdir:
            return
        datadir = os.path.join(self.tmpdir, "data")
        # The directory goes first: a postmaster pg_ctl had not yet started cannot start
        # without it; one that had started is ended by its argv.
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        kill_server_processes(datadir)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        if not os.path.exists(self.tmpdir):
            self._reaper.forget_server(datadir)
            self._reaper.forget_dir(self.tmpdir)


def scram_verifier(password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677), which
    it takes as is in place of a password. The password is 256 random bits: the iteration
    count that slows down guessing a person's password buys nothing here and costs every
    connection several milliseconds at PostgreSQL's default of 4096."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}"


def server_account() -> tuple[int, int] | None:
    """(uid, gid) the throw-away server runs as: None when we are not root (our own)."""
    if os.geteuid() != 0:
        return None
    return _unprivileged_account()[1:]


def _write_password(path: Path, password: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password)


def _has_password(cluster: Path) -> bool:
    return os.path.isfile(f"{cluster}{PASSWORD_SUFFIX}")


def _read_password(cluster: Path) -> str:
    with open(f"{cluster}{PASSWORD_SUFFIX}", encoding="utf-8") as f:
        return f.read().strip()


def _cluster_cache() -> Path | None:
    """Where initdb'd clusters are kept (the installation cache); None when there is none
    to be had (then each run runs initdb)."""
    if os.environ.get(CLUSTER_CACHE_ENV) == "0":
        return None
    try:
        return cache_directory()
    except (OSError, ServerError):
        return None


def file_identity(path: str) -> str:
    """Size and modification time: a changed binary (a package upgrade) is a new cluster."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _private_dir(parent: str, reaper: Reaper) -> str:
    """A new directory of mode 0700 under ``parent``, told to the reaper before it exists
    (so that a SIGKILL right after the mkdir leaves nothing behind)."""
    while True:
        path = os.path.join(parent, f"rlscheck-{secrets.token_hex(8)}")
        reaper.track_dir(path)
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:  # not ours: it must not be removed
            reaper.forget_dir(path)


class ExternalServer(Server):
    """An existing server: the plugin only creates and drops its own ``rlscheck_`` databases."""

    def __init__(self, dsn: str, *, description: str | None = None, files: ServerFiles | None = None) -> None:
        self.files = files  # the controller's throw-away server, seen from an xdist worker
        try:
            params = pg_conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise ServerError(f"rlscheck: --rlscheck-dsn / RLSCHECK_DSN is not a valid connection string: {exc}")
        self.maintenance_db = str(params.pop("dbname", None) or MAINTENANCE_DB)
        if "connect_timeout" not in params and not os.environ.get("PGCONNECT_TIMEOUT"):
            params["connect_timeout"] = str(DSN_CONNECT_TIMEOUT)  # a host that never answers must not hang the run
        self._base = params
        where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{self.maintenance_db}"
        try:
            conn = self.admin()
        except psycopg.OperationalError as exc:
            waited = params.get("connect_timeout") or os.environ.get("PGCONNECT_TIMEOUT")
            hint = (
                f"\n  rlscheck waited {waited} s for an answer (connect_timeout; set it in the DSN to wait longer)."
                if "timeout" in str(exc) and waited
                else ""
            )
            raise ServerError(
                f"rlscheck: cannot connect to --rlscheck-dsn server {where}: {str(exc).strip()}{hint}"
            ) from None
        with conn:
            row = conn.execute(
                "select current_user, rolsuper, rolcreatedb, current_setting('server_version')"
                " from pg_roles where rolname = current_user"
            ).fetchone()
            assert row is not None
            self.user, superuser, createdb, version = row
            self.server_version = conn.info.server_version
        if not (superuser or createdb):
            raise PrivilegeError(
                f"rlscheck: role {self.user!r} on {where} lacks CREATEDB. The plugin creates its own "
                "databases there (named rlscheck_*), applies the migrations to them and drops them after "
                f"the run; it never touches other databases. Grant it: ALTER ROLE {self.user} CREATEDB; "
                "or drop --rlscheck-dsn to use a throw-away local server."
            )
        self.description = description or f"PostgreSQL {version} at {where} (--rlscheck-dsn, as role {self.user})"

    def lost_report(self) -> str:
        return self.files.lost_report() if self.files else super().lost_report()

    def stop(self) -> None:
        """Nothing to stop: the server is not ours."""


def _unprivileged_account() -> tuple[str, int, int]:
    """The account server processes run as when we are root: $RLSCHECK_PG_USER, postgres, nobody."""
    names = [os.environ[PG_USER_ENV]] if os.environ.get(PG_USER_ENV) else ["postgres", "nobody"]
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return name, entry.pw_uid, entry.pw_gid
    raise ServerError(
        f"rlscheck: running as root, and PostgreSQL refuses to run as root, but no unprivileged account "
        f"was found to run it as (tried {', '.join(names)}). Create one (useradd --system postgres) or "
        f"set {PG_USER_ENV}."
    )


def temp_parent(run_as: tuple[int, int] | None) -> str:
    """A temp directory parent the server's account can reach (a root-only $TMPDIR won't do):
    $TMPDIR when it is set; else a memory file system with room to spare (the data is
    thrown away, and files are made there many times faster than on a disk's journal);
    else the system's temp directory."""
    parent = tempfile.gettempdir()
    if not os.environ.get("TMPDIR"):
        memory = _memory_parent(run_as)
        if memory:
            return memory
    if run_as is None or _traversable(Path(parent), *run_as):
        return parent
    for fallback in ("/tmp", "/var/tmp"):
        if _traversable(Path(fallback), *run_as):
            return fallback
    raise ServerError(
        f"rlscheck: the temp directory {parent} cannot be reached by uid {run_as[0]}, which the server runs as; "
        "set TMPDIR to a world-traversable directory."
    )


#: A memory file system for the server's data when it has this much room (a container's
#: 64 MB /dev/shm has not).
MEMORY_FS_FREE = 2 * 1024**3
MEMORY_FS = "/dev/shm"


def _memory_parent(run_as: tuple[int, int] | None) -> str | None:
    try:
        st = os.statvfs(MEMORY_FS)
        with open("/proc/mounts", encoding="utf-8") as mounts:
            tmpfs = any(line.split()[1:3] == [MEMORY_FS, "tmpfs"] for line in mounts)
    except OSError:
        return None
    if not tmpfs or st.f_bavail * st.f_frsize < MEMORY_FS_FREE or not os.access(MEMORY_FS, os.W_OK | os.X_OK):
        return None
    if run_as is not None and not _traversable(Path(MEMORY_FS), *run_as):
        return None
    return MEMORY_FS


def _traversable(path: Path, uid: int, gid: int) -> bool:
    groups = {g.gr_gid for g in grp.getgrall() if pwd.getpwuid(uid).pw_name in g.gr_mem} | {gid}
    for part in [path, *path.parents]:
        try:
            st = part.stat()
        except OSError:
            return False
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True
