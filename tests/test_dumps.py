"""Dumps as sources: pg_dump's schema and data dumps load as migrations and seeds, and the
sweep finds on them what it finds on the migrations they were dumped from."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import EXAMPLE, EXAMPLE_PRINCIPALS, SEED
from pytest_rlscheck.errors import Location, MigrationError
from pytest_rlscheck.binaries import find_pg_binaries
from pytest_rlscheck.migrations import SqlFile, apply_files, load_files
from pytest_rlscheck.session import Database
from pytest_rlscheck.supabase import created_objects, needed_parts, shim_sql

DATA = Path(__file__).parent / "data"
PRINCIPALS = EXAMPLE_PRINCIPALS + """
[tool.rlscheck.tables."public.organizations"]
tenant_column = "id"
"""
#: A migration after the worked example's that the sweep finds things in.
FINDINGS = """
alter policy "Members can view their memberships" on public.organization_members using (user_id = auth.uid());
alter table public.conversations add column assigned_to uuid references auth.users (id);
"""

def _dump(database: Database, *options: str) -> str:
    """pg_dump of the installation the suite's server runs (a pg_dump older than the
    server refuses it)."""
    binaries = find_pg_binaries(os.environ.get("RLSCHECK_PG_BIN"))
    return subprocess.run(
        [str(binaries.bindir / "pg_dump"), *options, "--dbname", database.server.conninfo(database.name)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout


def _example_sources(extra: str) -> list[SqlFile]:
    paths = sorted((EXAMPLE / "migrations").glob("*.sql"))
    files = load_files(paths, "migration", EXAMPLE)
    if extra:
        files.append(SqlFile("20250101000000_change.sql", textwrap.dedent(extra), "migration"))
    return files + load_files([EXAMPLE / "seed.sql"], "seed", EXAMPLE)


def _load_as_rlscheck_does(database: Database, files: list[SqlFile]) -> None:
    """The shim the files need, then the files: the database a Supabase project has."""
    shim = [SqlFile(f"<shim {p}>", shim_sql(p), "shim") for p in needed_parts((f.text for f in files), None)]
    with database.connect() as conn:
        apply_files(conn, shim + files)


def _project(base: Path, migrations: dict[str, str], seed: str) -> None:
    """A Supabase project: supabase/migrations/, supabase/seed.sql, a pyproject.toml."""
    directory = base / "supabase" / "migrations"
    directory.mkdir(parents=True)
    for name, text in migrations.items():
        (directory / name).write_text(text)
    (base / "supabase" / "seed.sql").write_text(seed)
    (base / "pyproject.toml").write_text("[tool.rlscheck]\n" + PRINCIPALS)


def _outcomes(result: pytest.RunResult) -> list[str]:
    """Each sweep item and its outcome; not the message after it (it names the file the
    finding is in, which is the dump in one run and the migration in the other, and how much
    of it shows depends on the terminal's width)."""
    return sorted(
        line.split(" - ", 1)[0] for line in result.stdout.lines if re.match(r"(PASSED|FAILED|ERROR|SKIPPED) rlscheck::", line)
    )


def _run(pytester: pytest.Pytester) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rlscheck", "-rA", "-m", "rlscheck", timeout=300)


def test_a_schema_and_a_data_dump_load_and_the_sweep_finds_the_same(pytester, scratch_db) -> None:
    """pg_dump of a database built from the worked example (shim and all, as a Supabase
    database has it) as the project's only migration and its seed."""
    sources = _example_sources(FINDINGS)
    _load_as_rlscheck_does(scratch_db, sources)
    schema = _dump(scratch_db, "--schema-only")
    data = _dump(scratch_db, "--data-only")
    # what pg_dump 15.14+ writes, which this test is about
    assert re.search(r"^\\restrict \S+$", schema, re.M) and re.search(r"^\\unrestrict \S+$", data, re.M)
    assert "CREATE SCHEMA auth;" in schema and "CREATE SCHEMA extensions;" in schema
    assert "SELECT pg_catalog.set_config('search_path', '', false);" in schema
    assert re.search(r"^COPY public\.conversations .* FROM stdin;$", data, re.M)

    original, dumped = pytester.mkdir("original"), pytester.mkdir("dumped")
    _project(original, {Path(f.display).name: f.text for f in sources if f.kind == "migration"},
             (EXAMPLE / "seed.sql").read_text())
    _project(dumped, {"20240101000000_remote_schema.sql": schema}, data)
    with pytest.MonkeyPatch.context() as mp:  # each run from its project's directory
        mp.chdir(original)
        before = _run(pytester)
        mp.chdir(dumped)
        after = _run(pytester)
    assert before.ret == after.ret == pytest.ExitCode.TESTS_FAILED, after.stdout.str()
    assert _outcomes(before) and _outcomes(after) == _outcomes(before)
    assert any(line.startswith("FAILED rlscheck::public.organization_members::auth-per-row") for line in _outcomes(after))
    table = [line for line in after.stdout.lines if line.startswith("public.conversations ")]
    assert table == [line for line in before.stdout.lines if line.startswith("public.conversations ")]
    assert f"{SEED.total.conversations} rows" in table[0]  # the data dump's rows, loaded by COPY
    assert "Traceback" not in after.stdout.str() + after.stderr.str()


def test_a_copy_error_names_the_row_line_and_postgres_message(run_sql, scratch_db) -> None:
    text = (DATA / "dump_with_bad_row.sql").read_text()
    with pytest.raises(MigrationError) as info:
        run_sql({"supabase/migrations/20240101000000_dump.sql": text})
    error = info.value
    assert error.location == Location("supabase/migrations/20240101000000_dump.sql", 35, 1)  # the row "3<tab>not-a-uuid..."
    assert error.sqlstate == "22P02"
    report = error.render()
    assert report.startswith(
        "supabase/migrations/20240101000000_dump.sql:35:1: migration failed: ERROR 22P02: "
        'invalid input syntax for type uuid: "not-a-uuid"'
    )
    assert "CONTEXT: COPY notes, line 3, column owner" in report
    assert "> 35 | 3\tnot-a-uuid\tthird" in report
    assert "(row 3 of the data of the COPY at line 32)" in report
    with scratch_db.connect() as conn:  # the file's transaction is rolled back, as for any error
        assert conn.execute("select to_regclass('public.notes')").fetchone() == (None,)


def test_the_same_dump_without_the_bad_row_loads_every_value(run_sql, scratch_db) -> None:
    text = (DATA / "dump_with_bad_row.sql").read_text().replace("3\tnot-a-uuid\tthird\n", "")
    report = run_sql({"dump.sql": text}, kind="seed")
    with scratch_db.connect() as conn:
        rows = conn.execute("select id, body from public.notes order by id").fetchall()
        version = conn.info.server_version
    assert rows == [(1, "first"), (2, "tab\there"), (4, None)]
    timeout_notes = [n for n in report.notes if "transaction_timeout" in n]
    if version < 170000:  # pg_dump 17's header line on an older server: skipped, and said so
        assert len(timeout_notes) == 1
        assert timeout_notes[0].startswith("dump.sql:13:1: skipped `SET transaction_timeout = 0`")
        assert "`supabase db reset` on this version would fail here" in timeout_notes[0]
    else:
        assert timeout_notes == []


def test_another_transaction_timeout_is_not_skipped(run_sql, scratch_db) -> None:
    with scratch_db.connect() as conn:
        version = conn.info.server_version
    if version >= 170000:  # the server knows it: it applies, with no note
        assert run_sql({"001.sql": "set transaction_timeout = '5s';"}).notes == ()
    else:
        with pytest.raises(MigrationError, match='unrecognized configuration parameter "transaction_timeout"'):
            run_sql({"001.sql": "set transaction_timeout = '5s';"})


def test_a_dump_header_does_not_reach_the_next_migration(run_sql, scratch_db) -> None:
    """The header of a real pg_dump (search_path emptied, row_security off...), then an
    ordinary migration that relies on the default search_path, and one a SET ROLE ended."""
    header = _dump(scratch_db, "--schema-only")
    assert "set_config('search_path', '', false)" in header
    run_sql({
        "20240101000000_remote_schema.sql": header + "CREATE TABLE public.dumped (id integer);\n"
        "SET ROLE pg_read_all_data;\n",
        "20240102000000_app.sql": """
            create table unqualified (id int);
            insert into unqualified select id from dumped;
            create table settings as select current_setting('search_path') as search_path,
              current_setting('row_security') as row_security,
              current_setting('check_function_bodies') as check_function_bodies,
              current_user = session_user as own_role;
        """,
    })
    with scratch_db.connect() as conn:
        assert conn.execute("select to_regclass('public.unqualified') is not null").fetchone() == (True,)
        settings = conn.execute("select search_path, row_security, check_function_bodies, own_role from settings")
        assert settings.fetchone() == ('"$user", public', "on", "on", True)


def test_platform_schemas_of_a_supabase_dump_take_the_place_of_the_shim(pytester) -> None:
    """What a plain pg_dump of a Supabase database has of the platform: its schemas, the
    extensions in `extensions`, supabase_admin as owner, the realtime publication, an event
    trigger. The shim gives the roles and leaves the rest to the dump."""
    dump = (DATA / "supabase_platform_dump.sql").read_text()
    parts = needed_parts([dump], None)
    assert parts == ("core",)
    core = shim_sql(parts[0], created_objects([dump]))
    assert "create schema if not exists extensions" not in core and "create role" in core
    _project(pytester.path, {"20240101000000_remote_schema.sql": dump}, "")
    pytester.makepyfile(
        """
        def test_the_dump_is_what_loaded(rls):
            assert rls.scalar("select nspname from pg_namespace n join pg_extension e on e.extnamespace = n.oid"
                              " where extname = 'pgcrypto'") == "extensions"
            assert rls.scalar("select count(*) from pg_publication where pubname = 'supabase_realtime'") == 1
            assert rls.scalar("select pg_get_userbyid(evtowner) from pg_event_trigger"
                              " where evtname = 'pgrst_ddl_watch'") == "supabase_admin"
            assert rls.scalar("select count(*) from storage.buckets") == 0
            # the dump's own auth.uid(), not the shim's
            assert "platform dump" in rls.scalar("select obj_description('auth.uid()'::regprocedure)")

        def test_the_policy_holds(rls):
            alice = "11111111-1111-1111-1111-111111111111"
            rls.execute("insert into auth.users (id, email) values (%s, 'alice@example.test')", [alice])
            rls.execute("insert into public.notes (owner, body) values (%s, 'mine')", [alice])
            with rls.as_user(alice):
                assert rls.fetchall("select body from public.notes") == [("mine",)]
            with rls.as_anon():
                assert rls.fetchall("select body from public.notes") == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rlscheck", "-rA", timeout=300)
    out = result.stdout.str()
    assert "PASSED test_platform_schemas_of_a_supabase_dump_take_the_place_of_the_shim.py::test_the_dump_is_what_loaded" in out, out + result.stderr.str()
    assert "PASSED test_platform_schemas_of_a_supabase_dump_take_the_place_of_the_shim.py::test_the_policy_holds" in out
    assert "rlscheck::public.notes::" in out
    assert "Traceback" not in out


def test_needed_parts_leave_out_the_schemas_the_sources_create() -> None:
    dump = 'CREATE SCHEMA "storage";\nCREATE SCHEMA extensions;\nCREATE POLICY p ON storage.objects USING (auth.uid() = owner);'
    parts = needed_parts([dump], None)
    assert parts == ("core", "auth")
    assert "create schema if not exists extensions" not in shim_sql(parts[0], created_objects([dump]))
    assert "create schema if not exists extensions" in shim_sql("core")  # nothing owned: all of it
    assert "create publication" not in shim_sql("realtime", owned={"publication supabase_realtime"})
    # IF NOT EXISTS (supabase db dump's form, and the shim's own) does not count
    assert needed_parts(["create schema if not exists storage; select storage.foldername('a')"], None) == (
        "core", "storage")
    # a publication of their own: the realtime part comes without one
    own = ["create publication supabase_realtime; create policy p on realtime.messages using (true);"]
    parts = needed_parts(own, None)
    assert parts == ("core", "realtime")
    realtime = shim_sql(parts[1], created_objects(own))
    assert "create publication" not in realtime and "create table if not exists realtime.messages" in realtime
    assert shim_sql("realtime").count("\n") == realtime.count("\n")  # line numbers hold
    assert "create publication supabase_realtime" in shim_sql("realtime")
