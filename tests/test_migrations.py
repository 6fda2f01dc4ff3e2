"""Applying migrations the Supabase CLI way, on a real server, and reporting failures."""

from __future__ import annotations

import pytest

from conftest import write_project

from pytest_rlscheck import install_hints

from pytest_rlscheck.errors import Location, MigrationError


def test_concurrently_runs_outside_the_file_transaction(run_sql, scratch_db) -> None:
    report = run_sql(
        {
            "001_init.sql": """
                create table items (id int primary key, name text);
                insert into items values (1, 'a'), (2, 'b');
                create index concurrently items_name_idx on items (name);
                insert into items values (3, 'c');
                drop index concurrently items_name_idx;
                create unique index concurrently items_name_key on items (name);
            """
        }
    )
    assert report.statements == 6
    with scratch_db.connect() as conn:
        valid = conn.execute(
            "select indisvalid from pg_index where indexrelid = 'items_name_key'::regclass"
        ).fetchone()
        assert valid == (True,)
        assert conn.execute("select count(*) from items").fetchone() == (3,)
        assert conn.execute("select to_regclass('items_name_idx')").fetchone() == (None,)


def test_each_file_is_its_own_transaction(run_sql, scratch_db) -> None:
    with pytest.raises(MigrationError):
        run_sql(
            {
                "001_ok.sql": "create table kept (id int);",
                "002_broken.sql": "create table rolled_back (id int);\nselect no_such_column from kept;",
            }
        )
    with scratch_db.connect() as conn:
        assert conn.execute("select to_regclass('kept') is not null, to_regclass('rolled_back')").fetchone() == (
            True,
            None,
        )


def test_explicit_begin_commit_percent_signs_and_bom(run_sql, scratch_db) -> None:
    run_sql(
        {
            "001_tx.sql": "\ufeffbegin;\ncreate table pct (v text);\ninsert into pct values ('50%'), ('%s');\ncommit;\n"
            "create index concurrently pct_v on pct (v);\nselect count(*) from pct where v like '%\\%';"
        }
    )
    with scratch_db.connect() as conn:
        assert conn.execute("select array_agg(v order by v) from pct").fetchone() == (["%s", "50%"],)


def test_non_immutable_index_expression_is_reported_at_its_line(run_sql) -> None:
    with pytest.raises(MigrationError) as info:
        run_sql(
            {
                "20240101_schema.sql": "create table conversations (id int, started_at timestamptz);\n",
                "20240201_indexes.sql": """
                    -- hourly volume
                    create index concurrently idx_conversations_hourly
                      on conversations (DATE_TRUNC('hour', started_at));
                """,
            }
        )
    error = info.value
    assert error.location == Location("20240201_indexes.sql", 2, 1)
    assert error.sqlstate == "42P17"
    report = error.render()
    assert report.startswith(
        "20240201_indexes.sql:2:1: migration failed: ERROR 42P17: functions in index expression must be marked IMMUTABLE"
    )
    assert "> 2 | create index concurrently idx_conversations_hourly" in report
    assert "  3 |   on conversations (DATE_TRUNC('hour', started_at));" in report
    assert "applied before it: 1 of 2 migration files" in report
    assert "Traceback" not in report


def test_bare_percent_in_raise_notice_points_at_the_raise(run_sql) -> None:
    with pytest.raises(MigrationError) as info:
        run_sql(
            {
                "001_backfill.sql": """
                    create table t (id int);
                    do $$
                    begin
                      update t set id = id;
                      raise notice 'backfill 100% done';
                    end
                    $$;
                """
            }
        )
    error = info.value
    assert error.sqlstate == "42601"
    assert error.location == Location("001_backfill.sql", 5, 3)  # the RAISE line inside the DO body
    assert "too few parameters specified for RAISE" in error.render()
    assert "CONTEXT: compilation of PL/pgSQL function \"inline_code_block\" near line 4" in error.render()


def test_error_inside_a_function_body_points_into_the_file(run_sql) -> None:
    with pytest.raises(MigrationError) as info:
        run_sql(
            {
                "001_fn.sql": """
                    create table t (id int);
                    create function f() returns int language plpgsql as $fn$
                    begin
                      raise notice 'x % y';
                      return 1;
                    end $fn$;
                """
            }
        )
    assert info.value.location == Location("001_fn.sql", 4, 3)


def test_syntax_error_has_a_caret_at_the_column(run_sql) -> None:
    with pytest.raises(MigrationError) as info:
        run_sql({"001.sql": "create table ok (id int);\n\nselect 1,\n       2 frm ok;"})
    assert info.value.location == Location("001.sql", 4, 14)  # "frm" reads as an alias; "ok" is the error
    lines = info.value.render().splitlines()
    marked = lines.index("  > 4 |        2 frm ok;")
    assert lines[marked + 1] == "      |              ^"


def test_psql_meta_command_names_file_and_line(run_sql) -> None:
    with pytest.raises(MigrationError) as info:
        run_sql({"001.sql": "create table a (id int);\n\\set ON_ERROR_STOP on\ncreate table b (id int);"})
    assert info.value.location == Location("001.sql", 2, 1)
    assert "psql meta-command '\\set'" in info.value.render()


def test_missing_extension_names_it_and_the_server(run_sql, scratch_db) -> None:
    # one the server in use lacks (PostgreSQL 18's wheel has vector), named as Debian names it
    with scratch_db.connect() as conn:
        have = {row[0] for row in conn.execute("select name from pg_available_extensions")}
    name, package = next((n, p) for n, p in (("vector", "pgvector"), ("postgis", "postgis-3"), ("pg_partman", "partman"))
                         if n not in have)
    with pytest.raises(MigrationError) as info:
        run_sql(
            {"001_embeddings.sql": f"create extension if not exists {name} with schema public;"},
            server="PostgreSQL 15.1 at /usr/lib/postgresql/15/bin",
        )
    report = info.value.render()
    assert info.value.location == Location("001_embeddings.sql", 1, 1)
    assert f'extension "{name}" is not available' in report
    assert f"the extension '{name}' is not installed on the server in use: PostgreSQL 15.1 at /usr/lib/postgresql/15/bin" in report
    # the package is named as apt knows it: installable here, or to be had elsewhere
    assert (
        f"apt-get install postgresql-15-{package}" in report
        or f"postgresql-15-{package} is not in this system's package lists: it comes from the PostgreSQL Apt "
        "repository" in report
    )
    apt_says_missing = (
        install_hints._apt_knows("postgresql-15") and install_hints._apt_knows(f"postgresql-15-{package}") is False
    )
    assert ("apt-get install" in report) == (not apt_says_missing)


@pytest.mark.parametrize(
    ("server_known", "known", "missing"),
    [(True, True, False), (True, False, True), (True, None, False), (False, False, False), (None, None, False)],
)
def test_the_extension_hint_follows_what_apt_knows(run_sql, monkeypatch, server_known, known, missing) -> None:
    """apt's word counts only when it knows the server's own package (its lists may be empty)."""
    monkeypatch.setattr(
        install_hints, "_apt_knows", lambda package: server_known if package == "postgresql-15" else known
    )
    with pytest.raises(MigrationError) as info:
        run_sql({"001.sql": "create extension pg_cron;"}, server="PostgreSQL 15.1 at /usr/lib/postgresql/15/bin")
    report = info.value.render()
    if missing:
        assert "(postgresql-15-cron is not in this system's package lists" in report
    else:  # apt has it, or cannot tell: the usual name
        assert "(Debian/Ubuntu: apt-get install postgresql-15-cron)" in report


def test_seed_failures_say_seed(run_sql) -> None:
    with pytest.raises(MigrationError) as info:
        run_sql({"seed.sql": "insert into nowhere values (1);"}, kind="seed")
    assert info.value.render().startswith("seed.sql:1:13: seed failed: ERROR 42P01")


# -- migration files as the Supabase CLI reads them -------------------------------------------


def test_only_cli_migration_names_are_applied_and_the_rest_is_said(pytester: pytest.Pytester) -> None:
    write_project(
        pytester,
        {
            "20200101000000_init.sql": "create table legacy_init (id int);",  # the pre-2021 CLI's, first
            "20240101000000_schema.sql": "create table kept (id int);",
            "notes.sql": "create table from_notes (id int);",
            "20240102_no-name.sql": "create table kept_too (id int);",
        },
    )
    pytester.makepyfile(
        """
def test_tables(rls):
    names = {r[0] for r in rls.fetchall(
        "select relname from pg_class where relname in ('legacy_init', 'kept', 'from_notes', 'kept_too')")}
    assert names == {"kept", "kept_too"}
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rlscheck-migrations=migrations", timeout=240)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "rlscheck: 2 migration file(s), 0 seed file(s)*",
        '*skipped 20200101000000_init.sql (as the Supabase CLI does: an initial schema of a CLI before December 2021*',
        '*skipped notes.sql (as the Supabase CLI does: the file name must match "<timestamp>_name.sql")*',
    ])


def test_two_migrations_with_one_version_are_a_usage_error(pytester: pytest.Pytester) -> None:
    write_project(pytester, {"20240101000000_a.sql": "select 1;", "20240101000000_b.sql": "select 2;"})
    pytester.makepyfile("def test_a(rls):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rlscheck-migrations=migrations", timeout=240)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "two migrations have the version 20240101000000:" in err
    assert "20240101000000_a.sql and " in err and "20240101000000_b.sql" in err
    assert "Traceback" not in err


def test_session_settings_of_one_file_do_not_reach_the_next(run_sql) -> None:
    """pg_dump-style headers (`set_config('search_path', '', false)`, `set
    check_function_bodies = false`) end with their file, as the CLI's RESET ALL ends them."""
    run_sql({
        "001_dump.sql": "select pg_catalog.set_config('search_path', '', false);\ncreate table public.dumped (id int);\n",
        "002_app.sql": "create table unqualified (id int);\n",  # no schema selected, without the reset
    })
    with pytest.raises(MigrationError, match='column "missing_column" does not exist'):
        run_sql({
            "003_dump.sql": "set check_function_bodies = false;\n",
            "004_app.sql": "create function uses_missing() returns int language sql as "
                           "'select missing_column from public.dumped';\n",
        })


# -- dumps ----------------------------------------------------------------------------------


def test_copy_from_stdin_loads_rows_and_copy_to_stdout_runs(run_sql, scratch_db) -> None:
    report = run_sql(
        {
            "001_dump.sql": "create table t (id int, body text, tags text[]);\n"
            "COPY public.t (id, body, tags) FROM stdin;\n"
            "1\tsemi; colon\t{a,b}\n2\t\\N\t{}\n3\tback\\\\slash\t\\N\n\\.\n"
            "copy t (id) from stdin with (format csv);\n4\n\\.\n"
            "copy (select count(*) from t) to stdout;\n"
            "copy t (id) from stdin;\n",  # no data, no terminator: an empty COPY
        },
        kind="seed",
    )
    assert report.statements == 5
    with scratch_db.connect() as conn:
        rows = conn.execute("select id, body, tags from t order by id").fetchall()
    assert rows == [(1, "semi; colon", ["a", "b"]), (2, None, []), (3, "back\\slash", None), (4, None, None)]


def test_a_bad_copy_row_is_reported_at_its_line_and_not_the_statement(run_sql) -> None:
    with pytest.raises(MigrationError) as info:
        run_sql({
            "001.sql": "create table t (id int primary key);\n",
            "002_data.sql": "copy t from stdin;\n1\n2\n2\n\\.\n",
        })
    assert info.value.location == Location("002_data.sql", 4, 1)
    assert info.value.sqlstate == "23505"
    report = info.value.render()
    assert "duplicate key value violates unique constraint" in report and "> 4 | 2" in report
    assert "applied before it: 1 of 2 migration files" in report


def test_a_copy_error_that_is_no_row_s_points_at_the_copy(run_sql) -> None:
    with pytest.raises(MigrationError) as info:
        run_sql({"001.sql": "select 1;\ncopy missing_table from stdin;\n1\n\\.\n"})
    assert info.value.location == Location("001.sql", 2, 1)
    assert 'relation "missing_table" does not exist' in info.value.render()


def test_long_data_rows_are_cut_in_the_excerpt(run_sql) -> None:
    with pytest.raises(MigrationError) as info:
        run_sql({"001.sql": f"create table t (a int, b text);\ncopy t from stdin;\nx\t{'y' * 5000}\n\\.\n"})
    assert info.value.location == Location("001.sql", 3, 1)
    assert "more characters)" in info.value.render() and "y" * 300 not in info.value.render()


def test_set_role_of_one_file_ends_with_it(run_sql, scratch_db) -> None:
    run_sql({
        "001.sql": "set role pg_read_all_data;\n",
        "002.sql": "create table made_by as select current_user::text as who;\n",
    })
    with scratch_db.connect() as conn:
        assert conn.execute("select who = session_user from made_by").fetchone() == (True,)
