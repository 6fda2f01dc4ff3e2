"""Faults from outside the SQL: a server that dies, a file that is not UTF-8, a migration that
rolls itself back. Each is said plainly, with no traceback and nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_project

#: Ends the server the way a crash or an operator would (an immediate shutdown).
KILL_SERVER = """
do $$ begin
  execute format('copy (select 1) to program %L',
                 'kill -QUIT $(head -1 ' || current_setting('data_directory') || '/postmaster.pid)');
  perform pg_sleep(60);  -- the shutdown ends this statement, not a later one
end $$;
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rlscheck-migrations", "migrations", *args,
                                         timeout=240)


def _temp_dirs(result: pytest.RunResult) -> list[str]:
    import re

    return sorted(set(re.findall(r"/\S*rlscheck-[0-9a-f]{16}", result.stdout.str())))


def test_a_server_that_dies_during_a_migration_is_reported_as_such(pytester: pytest.Pytester) -> None:
    write_project(pytester, {"001_a.sql": "create table a (id int);\n" + KILL_SERVER + "create table b (id int);\n"})
    pytester.makepyfile("def test_a(rls):\n    pass\n")
    for args in ((), ("--rlscheck", "-m", "rlscheck")):
        result = _run(pytester, *args)
        out = result.stdout.str()
        assert result.ret == 1, out
        assert "migrations/001_a.sql:3:1: migration stopped: the connection to the database server was lost" in out
        assert "The throw-away server is no longer running. The end of its log" in out
        assert "immediate shutdown request" in out
        assert "migration failed: ERROR" not in out and "Traceback" not in out and "INTERNALERROR" not in out
        for path in _temp_dirs(result):
            assert not Path(path).exists(), f"{path} left behind"


def test_a_server_that_dies_during_a_test_is_reported_in_its_teardown(pytester: pytest.Pytester) -> None:
    write_project(pytester, {"001_a.sql": "create table a (id int);\n"})
    pytester.makepyfile(
        """
import os, signal, time
from pathlib import Path

def test_kills(rls):
    pid = int(rls.scalar("select pg_read_file('postmaster.pid')").split()[0])
    os.kill(pid, signal.SIGQUIT)  # from outside: the test's connection does not know yet
    deadline = time.monotonic() + 60
    def alive():
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)

def test_after(rls):
    pass
"""
    )
    result = _run(pytester, "-p", "no:randomly")
    out = result.stdout.str()
    result.assert_outcomes(passed=1, errors=2)
    assert "test_kills: the test's transaction could not be rolled back." in out
    assert "rlscheck: lost the database server" in out and "is no longer running" in out
    assert "Traceback" not in out and "psycopg/connection.py" not in out


def test_a_migration_that_is_not_utf8_names_the_file_line_and_byte(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("migrations").mkdir()
    pytester.path.joinpath("migrations", "001_latin1.sql").write_bytes(
        "create table a (id int);\ncomment on table a is 'caf\u00e9';\n".encode("latin-1")
    )
    pytester.makepyfile("def test_a(rls):\n    pass\n")
    for args in ((), ("--rlscheck", "-m", "rlscheck")):
        result = _run(pytester, *args)
        out = result.stdout.str()
        assert result.ret == 1, out
        assert "migrations/001_latin1.sql:2:27: migration failed: the file is not UTF-8: byte(s) e9 at byte offset 51" in out
        assert "UnicodeDecodeError" not in out and "INTERNALERROR" not in out


def test_a_rollback_inside_a_migration_discards_what_came_before_it_with_a_warning(pytester: pytest.Pytester) -> None:
    write_project(
        pytester,
        {
            "001_a.sql": """
                create table kept_before (id int);
                commit;
                create table lost_1 (id int);
                begin;
                create table lost_2 (id int);
                rollback;
                create table kept_after (id int);
            """
        },
    )
    pytester.makepyfile(
        """
def test_tables(rls):
    names = {r[0] for r in rls.fetchall("select relname from pg_class where relname in ('kept_before', 'lost_1', 'lost_2', 'kept_after')")}
    assert names == {"kept_before", "kept_after"}
"""
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*migrations/001_a.sql:6:1: this ROLLBACK undoes the 2 statement(s) before it in the file (lines 3-5)*"])
