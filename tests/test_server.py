"""Server lifecycle: binaries, running as root, existing servers (DSN), and no orphans."""

from __future__ import annotations

import os
import pwd
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

HANGS = """
import os, pathlib, time

def test_hang(rls, rlscheck_session):
    tmpdir = rlscheck_session.server.tmpdir
    pid = pathlib.Path(tmpdir, "data", "postmaster.pid").read_text().split()[0]
    pathlib.Path(os.environ["RLSCHECK_TEST_OUT"]).write_text(f"{tmpdir} {pid}")
    time.sleep(300)
"""


def _start_hanging_run(pytester: pytest.Pytester, out: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """Start pytest on the project; return once its test has written ``out``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rlscheck-migrations", "migrations", "-q", *args],
        cwd=pytester.path,
        env={**os.environ, "RLSCHECK_TEST_OUT": str(out)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not out.exists() or not out.read_text():
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "the test never started"
        time.sleep(0.1)
    return proc, out.read_text()


def _wait_until(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_no_orphaned_server_or_temp_dir_after_interruption(pytester: pytest.Pytester, tmp_path: Path, sig) -> None:
    write_project(pytester, SCHEMA)
    pytester.makepyfile(HANGS)
    proc, written = _start_hanging_run(pytester, tmp_path / "server.txt")
    tmpdir, pid = written.split()
    assert Path(tmpdir).is_dir() and _alive(int(pid))

    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0].decode()
    if sig != signal.SIGKILL:
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    _wait_until(lambda: not Path(tmpdir).exists() and not _alive(int(pid)))  # after SIGKILL: the reaper
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


def test_killed_dsn_run_leaves_no_database_behind(pytester: pytest.Pytester, dsn_alone, tmp_path: Path) -> None:
    existing_server = dsn_alone
    before = _databases(existing_server)
    roles_before = _cluster(existing_server)
    write_project(pytester, ROLE_SCHEMA)
    pytester.makepyfile(
        """
import os, pathlib, time

def test_hang(rls):
    pathlib.Path(os.environ["RLSCHECK_TEST_OUT"]).write_text(rls.scalar("select current_database()"))
    time.sleep(300)
"""
    )
    proc, name = _start_hanging_run(pytester, tmp_path / "db.txt", "--rlscheck-dsn", _dsn(existing_server, "dsn_creator"))
    assert name in _databases(existing_server)
    proc.kill()
    proc.communicate(timeout=30)
    _wait_until(lambda: not _databases(existing_server) - before and _cluster(existing_server) == roles_before)
    assert _databases(existing_server) - before == set()
    assert _cluster(existing_server) == roles_before


def test_the_first_connection_waits_for_the_socket_and_gives_up_cleanly() -> None:
    """The executor counts the server as up once its TCP port answers; under load the unix
    socket file can come a moment later. The plugin waits for it, and stops the server if it
    never comes."""
    import threading

    from pytest_rlscheck.errors import ServerError
    from pytest_rlscheck.reaper import Reaper
    from pytest_rlscheck.server import LocalServer

    reaper = Reaper()
    server = LocalServer(find_pg_binaries(None), reaper)
    try:
        socket = next(Path(server.tmpdir).glob(".s.PGSQL.*[0-9]"))
        hidden = socket.with_name("hidden")
        socket.rename(hidden)  # as if the server had not created it yet
        threading.Timer(0.3, hidden.rename, [socket]).start()
        started = time.monotonic()
        assert server._first_connection(deadline=time.monotonic() + 10) == server.server_version
        assert time.monotonic() - started >= 0.25
        socket.rename(hidden)
        with pytest.raises(ServerError, match="started but does not accept connections"):
            server._first_connection(deadline=time.monotonic() + 0.2)
    finally:
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


def _slow_server(tmp_root: Path, phase: str) -> tuple[Path, Path]:
    """A server installation whose initdb (or postgres) pauses at start: pg_ctl is a copy
    of the real one (it finds initdb and postgres next to itself), the others wrappers."""
    real = find_pg_binaries(None).bindir
    bindir = tmp_root / "bin"
    bindir.mkdir(parents=True)
    os.chmod(tmp_root, 0o777)
    os.chmod(bindir, 0o777)  # the server's account writes the marker
    shutil.copy2(real / "pg_ctl", bindir / "pg_ctl")
    for name in ("initdb", "postgres"):
        script = bindir / name
        pause = "sleep 60" if name == {"initdb": "initdb", "start": "postgres"}[phase] else ""
        script.write_text(WRAPPER.format(name=name, real=real / name, marker=bindir / f"{name}.args", pause=pause))
        script.chmod(0o755)
    return bindir, bindir / ("initdb.args" if phase == "initdb" else "postgres.args")


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
    try:
        bindir, marker = _slow_server(root, phase)
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
        _wait_until(lambda: marker.exists() or proc.poll() is not None, 120)
        assert marker.exists(), proc.communicate(timeout=30)[0].decode()
        # initdb: the cluster is made in a staging directory of the cache; start: the run's copy
        datadir = re.search(r"(/\S*(?:rlscheck-[0-9a-f]+|\.cluster-[0-9a-f]+-\w+)/data)", marker.read_text()).group(1)
        tmpdir = Path(datadir).parent
        assert tmpdir.is_dir()

        proc.send_signal(sig)
        output = proc.communicate(timeout=120)[0].decode()
        if sig != signal.SIGKILL:
            assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
            assert "Traceback" not in output
        _wait_until(lambda: not tmpdir.exists() and not _processes_naming(datadir))  # after SIGKILL: the reaper
        assert not _processes_naming(datadir), f"processes for {datadir} still running"
        assert not tmpdir.exists(), f"{tmpdir} left behind: {list(tmpdir.rglob('*'))[:5]}"
        assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no staging left in the cache
    finally:
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
            "002_slow.sql": "select pg_sleep(120) /* rlscheck-test-slow-build */;",
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

    _wait_until(lambda: building() or proc.poll() is not None, 120)
    assert building(), proc.communicate(timeout=30)[0].decode()
    assert "app_killed_in_build" in _cluster(existing_server).roles
    proc.kill()
    proc.communicate(timeout=30)
    _wait_until(lambda: _cluster(existing_server) == before, 60)
    assert _cluster(existing_server) == before


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
