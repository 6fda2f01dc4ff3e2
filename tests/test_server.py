"""Server lifecycle: binaries, running as root, existing servers (DSN), and no orphans.

Nothing here depends on how long something takes: a run that must hang blocks until the
test releases it (a pipe, a FIFO, a query that never returns), readiness is a message or a
file, and what a killed run leaves is looked at once its watchdog (the reaper) has exited.
The timeouts that remain only keep a broken run from hanging the suite."""

from __future__ import annotations

import os
import pwd
import select
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from conftest import NOTES_SCHEMA, NOTES_SEED, write_project
from pytest_rlscheck.binaries import find_pg_binaries
from pytest_rlscheck.errors import ServerNotFound
from pytest_rlscheck.server import _traversable

SCHEMA, SEED = NOTES_SCHEMA, NOTES_SEED
USES_RLS = """
def test_notes(rls):
    assert rls.scalar("select count(*) from notes") == 2
    with rls.as_user("11111111-1111-1111-1111-111111111111"):
        assert rls.scalar("select count(*) from notes") == 1
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=240)


# -- binaries ---------------------------------------------------------------------------


def test_binaries_are_found_and_versioned() -> None:
    found = find_pg_binaries()
    assert Path(found.pg_ctl).is_file() and found.major >= 14
    assert found.version in found.describe()


def test_no_server_anywhere_says_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(ServerNotFound) as info:
        find_pg_binaries(
            search_path=str(tmp_path),
            system_pattern=str(tmp_path / "*" / "bin"),
            wheel_packages=("no_such_server_wheel",),
            site_dirs=[str(tmp_path)],
        )
    message = str(info.value)
    assert "pg_config --bindir: pg_config is not on PATH" in message
    assert f"{tmp_path}/*/bin: no such directory" in message
    assert "a server in a Python wheel (no_such_server_wheel): none installed" in message
    assert "apt-get install postgresql" in message and "--rlscheck-dsn" in message


def test_wrong_pg_bin_is_a_clean_error(pytester: pytest.Pytester) -> None:
    write_project(pytester, SCHEMA)
    pytester.makepyfile(USES_RLS)
    result = _run(pytester, "--rlscheck-migrations", "migrations", "--rlscheck-pg-bin", str(pytester.path))
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*--rlscheck-pg-bin / RLSCHECK_PG_BIN points at *, but it has no pg_ctl, initdb, postgres*"])
    assert "Traceback" not in result.stdout.str()


# -- root -------------------------------------------------------------------------------


def test_server_processes_never_run_as_root(rls) -> None:
    backend = rls.scalar("select pg_backend_pid()")
    uid = os.stat(f"/proc/{backend}").st_uid
    expected = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert uid == expected != 0


def test_traversable_checks_every_parent(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    inner = private / "inner"
    inner.mkdir(mode=0o777)
    os.chmod(private, 0o700)
    assert not _traversable(inner, nobody.pw_uid, nobody.pw_gid)
    assert _traversable(Path("/tmp"), nobody.pw_uid, nobody.pw_gid)


def test_a_private_tmpdir_does_not_stop_the_server(pytester: pytest.Pytester, monkeypatch, tmp_path: Path) -> None:
    private = tmp_path / "root-only"
    private.mkdir()
    os.chmod(private, 0o700)
    monkeypatch.setenv("TMPDIR", str(private))
    write_project(pytester, SCHEMA, SEED)
    pytester.makepyfile(
        USES_RLS
        + f"""
def test_where(rlscheck_session):
    inside = rlscheck_session.server.tmpdir.startswith({str(private)!r})
    assert inside is {os.geteuid() != 0}
"""
    )
    result = _run(pytester, "--rlscheck-migrations", "migrations", "--rlscheck-seed", "seed.sql")
    result.assert_outcomes(passed=2)


# -- existing server (--rlscheck-dsn) ------------------------------------------------


@pytest.fixture(scope="module")
def existing_server(rlscheck_session):
    """The session's own server, seen as "an existing server" with two extra login roles."""
    rlscheck_session.template()  # the Supabase roles exist once the template is built
    server = rlscheck_session.server
    with server.admin() as conn, conn.transaction():  # one xdist worker at a time
        conn.execute("select pg_advisory_xact_lock(7107443, 77)")
        conn.execute(
            """
            do $$ begin
              if not exists (select from pg_roles where rolname = 'dsn_no_createdb') then
                create role dsn_no_createdb login;
              end if;
              if not exists (select from pg_roles where rolname = 'dsn_creator') then
                create role dsn_creator login createdb createrole;
              end if;
              if not exists (select from pg_roles where rolname = 'dsn_plain') then
                create role dsn_plain login createdb;
              end if;
            end $$;
            alter role dsn_plain password 'dsn-secret';
            alter role dsn_no_createdb password 'dsn-secret';
            alter role dsn_creator password 'dsn-secret';
            grant anon, authenticated, service_role to dsn_creator;
            """
        )
    with server.admin() as conn:  # CREATE DATABASE takes no transaction: a session lock
        conn.execute("select pg_advisory_lock(7107443, 77)")
        if not conn.execute("select 1 from pg_database where datname = 'rlscheck_decoy'").fetchone():
            conn.execute("create database rlscheck_decoy")
        conn.execute("select pg_advisory_unlock(7107443, 77)")
    yield server


@pytest.fixture
def dsn_alone(existing_server):
    """Runs on the existing server one at a time (xdist workers share it): each compares
    the whole cluster before and after, and one run's end waits for the others'."""
    with existing_server.admin() as conn:
        conn.execute("select pg_advisory_lock(7107443, 78)")
        yield existing_server
        conn.execute("select pg_advisory_unlock(7107443, 78)")


def _dsn(server, user: str) -> str:
    params = conninfo_to_dict(server.conninfo("postgres"))
    return f"postgresql://{user}:dsn-secret@/postgres?host={params['host']}&port={params['port']}"


def _databases(server) -> set[str]:
    with server.admin() as conn:
        return {r[0] for r in conn.execute("select datname from pg_database")}


def test_dsn_mode_creates_and_drops_only_its_own_databases(pytester: pytest.Pytester, dsn_alone) -> None:
    existing_server = dsn_alone
    before = _databases(existing_server)
    write_project(pytester, SCHEMA, SEED)
    pytester.makepyfile(
        USES_RLS
        + """
def test_where(rls):
    assert rls.scalar("select current_user") == "dsn_creator"
    assert rls.scalar("select current_database()").startswith("rlscheck_")
"""
    )
    dsn = _dsn(existing_server, "dsn_creator")
    result = _run(pytester, "--rlscheck-migrations", "migrations", "--rlscheck-seed", "seed.sql", "--rlscheck-dsn", dsn)
    result.assert_outcomes(passed=2)
    assert _databases(existing_server) - before == set()  # other xdist workers' databases may come and go
    assert "rlscheck_decoy" in _databases(existing_server)


ROLE_SCHEMA = {
    "001_roles.sql": """
        create role app_reader nologin;
        grant usage on schema public to app_reader;
        grant app_reader to authenticated;
        create table notes (id serial primary key, owner uuid not null default auth.uid(), body text);
        grant select on notes to app_reader;
    """
}


def _cluster(server):
    from pytest_rlscheck.cluster import snapshot

    with server.admin() as conn:
        return snapshot(conn)


def test_two_dsn_runs_in_a_row_leave_no_roles_behind(pytester: pytest.Pytester, dsn_alone) -> None:
    """The shim's roles exist there already (tolerated, kept); the migrations' own role goes."""
    existing_server = dsn_alone
    before = _cluster(existing_server)
    write_project(pytester, ROLE_SCHEMA)
    pytester.makepyfile(
        """
def test_role(rls):
    assert rls.scalar("select count(*) from pg_roles where rolname = 'app_reader'") == 1
"""
    )
    dsn = _dsn(existing_server, "dsn_creator")
    for _ in range(2):
        result = _run(pytester, "--rlscheck-migrations", "migrations", "--rlscheck-dsn", dsn)
        result.assert_outcomes(passed=1)
        assert _cluster(existing_server) == before


def test_dsn_role_outside_the_api_roles_is_told_the_grant(pytester: pytest.Pytester, existing_server) -> None:
    write_project(pytester, SCHEMA)
    pytester.makepyfile(USES_RLS)
    result = _run(pytester, "--rlscheck-migrations", "migrations", "--rlscheck-dsn", _dsn(existing_server, "dsn_plain"))
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*dsn_plain is not a member of the API roles*", "*GRANT anon, authenticated, service_role TO \"dsn_plain\";*"])
    assert "Traceback" not in result.stdout.str()


def test_a_dsn_host_that_never_answers_times_out(pytester: pytest.Pytester) -> None:
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    pytester.makepyfile(USES_RLS)
    try:
        result = _run(pytester, f"--rlscheck-dsn=postgresql://nobody@127.0.0.1:{listener.getsockname()[1]}/x")
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "*cannot connect to --rlscheck-dsn server 127.0.0.1:*timeout expired*",
        "*rlscheck waited 10 s for an answer (connect_timeout*",
    ])
    assert accepted, "the plugin never reached the listener"


def test_dsn_role_without_createdb_gets_a_clear_message(pytester: pytest.Pytester, existing_server) -> None:
    write_project(pytester, SCHEMA)
    pytester.makepyfile(USES_RLS)
    dsn = _dsn(existing_server, "dsn_no_createdb")
    result = _run(pytester, "--rlscheck-migrations", "migrations", "--rlscheck-dsn", dsn)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*role 'dsn_no_createdb' on * lacks CREATEDB*ALTER ROLE dsn_no_createdb CREATEDB*"])


def test_unreachable_dsn_is_a_clean_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USES_RLS)
    result = _run(pytester, "--rlscheck-dsn", "postgresql://nobody@127.0.0.1:9/nothing?connect_timeout=2")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*cannot connect to --rlscheck-dsn server 127.0.0.1:9/nothing*"])
    assert "Traceback" not in result.stdout.str()


# -- interrupted runs -----------------------------------------------------------------

#: A test that tells the outer test where its server is (on the READY pipe) and then blocks
#: on the HOLD pipe, which only the outer test's end (or death) closes.
HANGS = """
import os, pathlib

def test_hang(rls, rlscheck_session):
    tmpdir = rlscheck_session.server.tmpdir
    pid = pathlib.Path(tmpdir, "data", "postmaster.pid").read_text().split()[0]
    os.write(int(os.environ["RLSCHECK_TEST_READY_FD"]), f"{tmpdir} {pid}\\n".encode())
    os.read(int(os.environ["RLSCHECK_TEST_HOLD_FD"]), 1)
"""

#: Safety net only: a run that never gets ready fails the test instead of hanging it.
NEVER = 240


class HangingRun:
    """pytest on the project in a subprocess, whose test reports on a pipe and then blocks
    until :meth:`release` (or this process's end) closes the other one."""

    def __init__(self, pytester: pytest.Pytester, *args: str, test: str = HANGS) -> None:
        pytester.makepyfile(test)
        ready_r, ready_w = os.pipe()
        self._hold_r, self._hold_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rlscheck-migrations", "migrations", "-q",
                 *args],
                cwd=pytester.path,
                env={**os.environ, "RLSCHECK_TEST_READY_FD": str(ready_w), "RLSCHECK_TEST_HOLD_FD": str(self._hold_r)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(ready_w, self._hold_r),
            )
        finally:
            os.close(ready_w)  # the child's copy is the only writer: EOF when it is gone
            os.close(self._hold_r)
        try:
            self.reaper = None
            self.message = self._read_line(ready_r)
            assert self.message, f"the test never started:\n{self.output()}"
            self.reaper = _reaper_of(self.proc.pid)
        except BaseException:
            self.release()
            raise
        finally:
            os.close(ready_r)

    @staticmethod
    def _read_line(fd: int) -> str:
        data = b""
        while not data.endswith(b"\n"):
            readable, _, _ = select.select([fd], [], [], NEVER)
            chunk = os.read(fd, 4096) if readable else b""
            if not chunk:
                return ""
            data += chunk
        return data.decode().strip()

    def output(self) -> str:
        self.release()
        return self.proc.communicate(timeout=NEVER)[0].decode()

    def release(self) -> None:
        if self._hold_w is not None:
            os.close(self._hold_w)
            self._hold_w = None


def _children(pid: int) -> list[tuple[int, bytes]]:
    """The processes whose parent is ``pid``, with their command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append((int(entry.name), cmdline))
    return found


def _reaper_of(pid: int) -> int:
    """The watchdog process the rlscheck run ``pid`` started."""
    (reaper,) = [child for child, cmdline in _children(pid) if b"pytest_rlscheck.reaper" in cmdline]
    return reaper


def _exited(pid: int) -> bool:
    """Wait for ``pid`` (not a child of ours) to exit: True once it has, False after NEVER."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], NEVER)
        return bool(readable)
    finally:
        os.close(fd)


def _wait_until(condition, seconds: float = NEVER) -> None:
    """Poll for a state the test cannot be told about (a file, a query); ``seconds`` is a safety net."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_no_orphaned_server_or_temp_dir_after_interruption(pytester: pytest.Pytester, sig) -> None:
    write_project(pytester, SCHEMA)
    run = HangingRun(pytester)
    try:
        tmpdir, pid = run.message.split()
        assert Path(tmpdir).is_dir() and _alive(int(pid))
        run.proc.send_signal(sig)
        output = run.proc.communicate(timeout=NEVER)[0].decode()
    finally:
        run.release()
    if sig != signal.SIGKILL:
        # the run cleans up itself before it exits
        assert run.proc.returncode == pytest.ExitCode.INTERRUPTED, output
        assert not _alive(int(pid)), f"postmaster {pid} still running after the run ended"
        assert not Path(tmpdir).exists(), f"{tmpdir} left behind by the run"
    assert _exited(run.reaper), f"the reaper {run.reaper} is still running"  # after SIGKILL: it cleans up
    assert not _alive(int(pid)), f"postmaster {pid} still running"
    assert not Path(tmpdir).exists(), f"{tmpdir} left behind"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not a server
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_killed_dsn_run_leaves_no_database_behind(pytester: pytest.Pytester, dsn_alone) -> None:
    existing_server = dsn_alone
    before = _databases(existing_server)
    roles_before = _cluster(existing_server)
    write_project(pytester, ROLE_SCHEMA)
    test = """
import os

def test_hang(rls):
    os.write(int(os.environ["RLSCHECK_TEST_READY_FD"]), rls.scalar("select current_database()").encode() + b"\\n")
    os.read(int(os.environ["RLSCHECK_TEST_HOLD_FD"]), 1)
"""
    run = HangingRun(pytester, "--rlscheck-dsn", _dsn(existing_server, "dsn_creator"), test=test)
    try:
        name = run.message
        assert name in _databases(existing_server)
        assert "app_reader" in _cluster(existing_server).roles  # the migration's role, made by the run
        run.proc.kill()
        run.proc.communicate(timeout=NEVER)
    finally:
        run.release()
    assert _exited(run.reaper), f"the reaper {run.reaper} is still running"
    assert _databases(existing_server) - before == set()
    assert _cluster(existing_server) == roles_before


def test_the_first_connection_waits_for_the_socket_and_gives_up_cleanly() -> None:
    """The executor counts the server as up once its TCP port answers; under load the unix
    socket file can come a moment later. The plugin waits for it, and stops the server if it
    never comes."""
    import psycopg

    from pytest_rlscheck.errors import ServerError
    from pytest_rlscheck.reaper import Reaper
    from pytest_rlscheck.server import LocalServer

    reaper = Reaper()
    server = LocalServer(find_pg_binaries(None), reaper)
    attempts: list[str] = []
    bring_back = [True]  # the socket comes back after the first failed attempt (first part only)
    connect = server.admin

    def admin():
        """The real connection, attempts recorded."""
        try:
            conn = connect()
        except psycopg.OperationalError as exc:
            attempts.append(str(exc))
            if bring_back[0]:
                bring_back[0] = False
                hidden.rename(socket)
            raise
        attempts.append("connected")
        return conn

    try:
        socket = next(Path(server.tmpdir).glob(".s.PGSQL.*[0-9]"))
        hidden = socket.with_name("hidden")
        server.admin = admin
        socket.rename(hidden)  # as if the server had not created it yet
        assert server._first_connection(deadline=time.monotonic() + NEVER) == server.server_version
        assert len(attempts) == 2 and "No such file" in attempts[0] and attempts[1] == "connected"
        # no socket and no time left: one attempt, then a clean error naming the directory
        del attempts[:]
        socket.rename(hidden)  # and it stays away
        with pytest.raises(ServerError, match="started but does not accept connections") as info:
            server._first_connection(deadline=float("-inf"))
        assert len(attempts) == 1 and "No such file" in attempts[0]
        assert server.tmpdir in str(info.value) and "Server log:" in str(info.value)
        hidden.rename(socket)
    finally:
        server.__dict__.pop("admin", None)
        server.stop()
        reaper.close()
    assert not Path(server.tmpdir).exists()


# -- interrupted during server start ----------------------------------------------------

WRAPPER = """#!/bin/sh
# stands in for {name}: records its arguments, and in the phase under test waits to be interrupted
case "$1" in -V|--version) exec "{real}" "$@";; esac
echo "$@" > "{marker}.tmp" && mv "{marker}.tmp" "{marker}"
{pause}
exec "{real}" "$@"
"""


def _slow_server(tmp_root: Path, phase: str) -> tuple[Path, Path, Path]:
    """A server installation whose initdb (or postgres) pauses at start until released: pg_ctl
    is a copy of the real one (it finds initdb and postgres next to itself), the others
    wrappers. The pause is a read from a FIFO that only the test writes to (or opens), so it
    lasts as long as the test needs, however slow the machine."""
    real = find_pg_binaries(None).bindir
    bindir = tmp_root / "bin"
    bindir.mkdir(parents=True)
    os.chmod(tmp_root, 0o777)
    os.chmod(bindir, 0o777)  # the server's account writes the marker
    release = bindir / "release"
    os.mkfifo(release)
    os.chmod(release, 0o666)  # the server's account reads it
    shutil.copy2(real / "pg_ctl", bindir / "pg_ctl")
    for name in ("initdb", "postgres"):
        script = bindir / name
        pause = f'read _ < "{release}"' if name == {"initdb": "initdb", "start": "postgres"}[phase] else ""
        script.write_text(WRAPPER.format(name=name, real=real / name, marker=bindir / f"{name}.args", pause=pause))
        script.chmod(0o755)
    return bindir, bindir / ("initdb.args" if phase == "initdb" else "postgres.args"), release


def _release(fifo: Path) -> None:
    """Let a paused wrapper go on (if one still waits: opening a FIFO no one reads fails)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.close(fd)


def _processes_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(text.encode() in arg for arg in argv) and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("phase", ["initdb", "start"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_interrupted_server_start_leaves_nothing(pytester: pytest.Pytester, phase: str, sig) -> None:
    import re
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="rlscheck-test-bin-", dir="/tmp"))
    release = root / "bin" / "release"
    datadir = None
    try:
        bindir, marker, release = _slow_server(root, phase)
        cache = root / "cache"  # initdb runs once per installation, into the cache: this one's own
        cache.mkdir(mode=0o755)
        write_project(pytester, SCHEMA)
        pytester.makepyfile(USES_RLS)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rlscheck-migrations", "migrations",
             f"--rlscheck-pg-bin={bindir}"],
            cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, "RLSCHECK_CACHE_DIR": str(cache)},
        )
        _wait_until(lambda: marker.exists() or proc.poll() is not None)  # the wrapper has started and waits
        if not marker.exists():
            _release(release)
            pytest.fail(proc.communicate(timeout=NEVER)[0].decode())
        reaper = _reaper_of(proc.pid)
        # initdb: the cluster is made in a staging directory of the cache; start: the run's copy
        datadir = re.search(r"(/\S*(?:rlscheck-[0-9a-f]+|\.cluster-[0-9a-f]+-\w+)/data)", marker.read_text()).group(1)
        tmpdir = Path(datadir).parent
        assert tmpdir.is_dir()
        assert _processes_naming(datadir)  # the paused wrapper

        proc.send_signal(sig)
        output = proc.communicate(timeout=NEVER)[0].decode()
        if sig != signal.SIGKILL:
            assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
            assert "Traceback" not in output
        assert _exited(reaper), f"the reaper {reaper} is still running"  # after SIGKILL: it cleans up
        assert not _processes_naming(datadir), f"processes for {datadir} still running"
        assert not tmpdir.exists(), f"{tmpdir} left behind: {list(tmpdir.rglob('*'))[:5]}"
        assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no staging left in the cache
    finally:
        _release(release)
        if datadir is not None:  # what this test's run left (its directories are this test's own)
            for pid in _processes_naming(datadir):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


def test_dsn_run_killed_during_its_build_leaves_no_role_behind(pytester: pytest.Pytester, dsn_alone) -> None:
    """The watchdog knows the cluster as it was before the build: what a committed migration
    added before the kill is the run's, and goes."""
    existing_server = dsn_alone
    before = _cluster(existing_server)
    write_project(
        pytester,
        {
            "001_role.sql": "create role app_killed_in_build nologin;",
            # a build that never ends by itself: only the kill (the reaper's DROP ... WITH (FORCE)) ends it
            "002_slow.sql": "select pg_sleep('infinity') /* rlscheck-test-slow-build */;",
        },
    )
    pytester.makepyfile(USES_RLS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rlscheck-migrations", "migrations",
         "--rlscheck-dsn", _dsn(existing_server, "dsn_creator")],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )

    def building() -> bool:
        with existing_server.admin() as conn:
            return bool(conn.execute(
                "select 1 from pg_stat_activity where query like '%rlscheck-test-slow-build%' and pid <> pg_backend_pid()"
            ).fetchone())

    try:
        _wait_until(lambda: building() or proc.poll() is not None)
        assert building(), proc.communicate(timeout=NEVER)[0].decode()
        reaper = _reaper_of(proc.pid)
        assert "app_killed_in_build" in _cluster(existing_server).roles
        proc.kill()
        proc.communicate(timeout=NEVER)
        assert _exited(reaper), f"the reaper {reaper} is still running"
        assert not building(), "the build's query outlived the run"
        assert _cluster(existing_server) == before
    finally:
        with existing_server.admin() as conn:  # whatever the outcome, nothing of it runs on
            conn.execute("select pg_terminate_backend(pid) from pg_stat_activity"
                         " where query like '%rlscheck-test-slow-build%' and pid <> pg_backend_pid()")
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=NEVER)


def test_server_settings_reach_the_throw_away_server(pytester: pytest.Pytester) -> None:
    write_project(pytester, SCHEMA)
    pytester.path.joinpath("pyproject.toml").write_text('[tool.rlscheck]\nserver_settings = {work_mem = "8MB", "app.quote" = "it\'s"}\n')
    pytester.makepyfile(
        """
def test_settings(rls):
    assert rls.scalar("show work_mem") == "16MB"
    assert rls.scalar("select current_setting('app.quote')") == "it's"
"""
    )
    result = _run(pytester, "--rlscheck-migrations", "migrations", "--rlscheck-pg-setting=work_mem=16MB")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["rlscheck: server settings: work_mem=16MB, app.quote=it's"])
    refused = _run(pytester, "--rlscheck-migrations", "migrations", "--rlscheck-pg-setting=work_mem=lots")
    assert refused.ret == 1
    refused.stdout.fnmatch_lines(["*did not start*", '*invalid value for parameter "work_mem": "lots"*'])
    assert "Traceback" not in refused.stdout.str()
