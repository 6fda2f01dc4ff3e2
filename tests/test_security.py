"""Who can reach the throw-away server, and what one test can leave behind for the next."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from conftest import NOTES_SCHEMA, NOTES_SEED, write_project
from pytest_rlscheck.binaries import find_pg_binaries
from pytest_rlscheck.errors import RlsAssertionError, RlscheckUsageError
from pytest_rlscheck.server import _traversable

SCHEMA, SEED = NOTES_SCHEMA, NOTES_SEED


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--rlscheck-migrations", "migrations", "--rlscheck-seed", "seed.sql", *args,
        timeout=240,
    )


# -- who can connect ----------------------------------------------------------------------


def _params(rlscheck_session) -> dict:
    return conninfo_to_dict(rlscheck_session.server.conninfo("postgres"))


def test_the_server_listens_on_no_port_and_asks_for_the_runs_password(rlscheck_session) -> None:
    params = _params(rlscheck_session)
    with rlscheck_session.server.admin() as conn:
        assert conn.execute("show listen_addresses").fetchone() == ("",)
        methods = {r[0] for r in conn.execute("select auth_method from pg_hba_file_rules")}
    assert methods == {"scram-sha-256"}
    socket_dir = Path(params["host"])
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    without = {k: v for k, v in params.items() if k != "password"}
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(**without)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**{**without, "password": "guess"})


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another OS account needs root (CI runs as root)")
def test_another_os_user_cannot_connect_even_with_the_password(rlscheck_session) -> None:
    """A CI runner's other jobs run under other accounts: the socket's directory keeps them out."""
    params = _params(rlscheck_session)
    with rlscheck_session.server.admin() as conn:
        postmaster = int(conn.execute("select pg_read_file('postmaster.pid')").fetchone()[0].split()[0])
    server_uid = os.stat(f"/proc/{postmaster}").st_uid
    nobody = next(a for a in (pwd.getpwnam(n) for n in ("nobody", "daemon")) if a.pw_uid not in (0, server_uid))
    # a psql the other account can run (a wheel's, under /root, it cannot)
    candidates = [shutil.which("psql"), str(find_pg_binaries(rlscheck_session.settings.pg_bin).bindir / "psql")]
    psql = next((c for c in candidates if c and _traversable(Path(c), nobody.pw_uid, nobody.pw_gid)), None)
    assert psql, "psql is needed to connect as another OS user"
    result = subprocess.run(
        [psql, "-h", params["host"], "-p", str(params["port"]), "-U", params["user"], "-d", "postgres", "-Atc",
         "select 'connected'"],
        user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], cwd="/",
        env={"PGPASSWORD": params["password"], "PGCONNECT_TIMEOUT": "5", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0 and "connected" not in result.stdout
    assert "Permission denied" in result.stderr, (nobody.pw_name, result.stderr)
    # and the same command as the run's own account does connect: the refusal is the directory's
    own = subprocess.run(
        [psql, "-h", params["host"], "-p", str(params["port"]), "-U", params["user"], "-d", "postgres", "-Atc",
         "select 'connected'"],
        env={**os.environ, "PGPASSWORD": params["password"]}, capture_output=True, text=True, timeout=30,
    )
    assert own.stdout.strip() == "connected", own.stderr


# -- a second connection on the shared database ---------------------------------------------


def test_a_second_connection_is_refused_on_the_shared_database(rls, rlscheck_session) -> None:
    with pytest.raises(RlscheckUsageError, match="rls_fresh_db"):
        rls.connect()
    with pytest.raises(RlscheckUsageError, match="rls_fresh_db"):
        rls.dsn  # noqa: B018
    # nor can a connection string built by hand reach it, superuser or not
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        psycopg.connect(rlscheck_session.worker_database().dsn, connect_timeout=5)
    assert rls.scalar("select 1") == 1  # the test's own connection goes on


def test_writes_through_another_connection_cannot_reach_later_tests(pytester: pytest.Pytester) -> None:
    write_project(pytester, SCHEMA, SEED)
    pytester.makepyfile(
        """
import psycopg, pytest

def test_1_tries_to_commit_elsewhere(rls, rlscheck_session):
    for connect in (rls.connect, lambda: psycopg.connect(rlscheck_session.worker_database().dsn)):
        with pytest.raises(Exception):
            with connect() as other:
                other.execute("alter table notes disable row level security")
                other.commit()

def test_2_rls_still_on(rls):
    with rls.as_user("11111111-1111-1111-1111-111111111111"):
        assert rls.scalar("select count(*) from notes") == 1

def test_3_fresh_db_may_connect(rls_fresh_db):
    with rls_fresh_db.connect() as other:
        assert other.execute("select count(*) from notes").fetchone() == (2,)
"""
    )
    _run(pytester, "-p", "no:randomly").assert_outcomes(passed=3)


# -- session state between tests ----------------------------------------------------------


def test_session_state_does_not_outlive_the_test(pytester: pytest.Pytester) -> None:
    write_project(pytester, SCHEMA, SEED)
    pytester.makepyfile(
        """
def test_1_leaves_state(rls):
    rls.execute("select pg_advisory_lock(42)")
    rls.execute("prepare leftover as select 1")
    rls.execute("select nextval('notes_id_seq')")
    for _ in range(6):  # psycopg prepares a statement after 5 runs
        rls.scalar("select count(*) from notes where id > %s", [0])

def test_2_finds_none_of_it(rls):
    assert rls.scalar(
        "select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()") == 0
    assert rls.scalar("select count(*) from pg_prepared_statements where name = 'leftover'") == 0
    rls.execute("prepare leftover as select 2")  # would fail: prepared statement already exists
    import psycopg, pytest
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        rls.scalar("select currval('notes_id_seq')")
    for _ in range(7):  # psycopg's own prepared statements still work after the reset
        assert rls.scalar("select count(*) from notes where id > %s", [0]) == 2
"""
    )
    _run(pytester, "-p", "no:randomly").assert_outcomes(passed=2)


def test_a_failed_identity_switch_leaves_the_transaction_usable(rls) -> None:
    rls.execute("insert into public.organizations (name) values ('kept-org')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="no_such_role"):
        with rls.as_role("no_such_role"):
            pass  # pragma: no cover - never entered
    assert rls.identity is None
    assert rls.scalar("select current_user") == "postgres"  # the owner side, as before the switch
    assert rls.scalar("select count(*) from public.organizations where name = 'kept-org'") == 1


def test_a_bad_relation_name_is_an_assertion_error_and_the_transaction_goes_on(rls, alice, bob) -> None:
    rls.execute("insert into public.organizations (name) values ('kept-org')")
    for name in ("no_such_table", "a.b.c.d", "not a name"):
        with pytest.raises(RlsAssertionError, match="not a relation name|does not exist"):
            rls.assert_isolated(name, user=alice, other=bob)
    assert rls.scalar("select count(*) from public.organizations where name = 'kept-org'") == 1


def test_no_exiting_python_process_can_kill_the_server(rlscheck_session) -> None:
    """mirakuru's exit hook, in every process that imported it, SIGKILLs the processes whose
    mirakuru_uuid contains that process's pid as a substring: the server carries no mark."""
    from mirakuru.base_env import processes_with_env

    with rlscheck_session.server.admin() as conn:
        postmaster = int(conn.execute("select pg_read_file('postmaster.pid')").fetchone()[0].split()[0])
    environ = dict(
        item.split("=", 1) for item in Path(f"/proc/{postmaster}/environ").read_text().split("\0") if "=" in item
    )
    assert "mirakuru_uuid" not in environ
    assert environ["LC_ALL"] == environ["LANG"]  # pytest-postgresql's environment, less the mark
    for digits in [str(d) for d in range(10)] + [str(os.getpid())]:
        assert postmaster not in processes_with_env("mirakuru_uuid", digits)


def test_a_commit_before_an_aborted_transaction_is_still_detected(pytester: pytest.Pytester) -> None:
    """COMMIT, then a new transaction that fails: what was committed must not reach the next test."""
    write_project(pytester, SCHEMA, SEED)
    pytester.makepyfile(
        """
import psycopg, pytest

def test_1_commits_then_fails(rls):
    rls.connection.execute("insert into notes (owner, body) values (gen_random_uuid(), 'committed')")
    rls.connection.execute("commit")
    rls.connection.execute("begin")
    with pytest.raises(psycopg.errors.DivisionByZero):
        rls.connection.execute("select 1/0")

def test_2_sees_the_template(rls):
    assert rls.scalar("select count(*) from notes") == 2
"""
    )
    result = _run(pytester, "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_1_commits_then_fails ended the test transaction itself*"])
