"""What a user reads when the input is wrong or there is nothing to do: a clear message, no
traceback (pytest in a subprocess on a project of its own)."""

from __future__ import annotations

import textwrap

import pytest

from conftest import write_project

A = "11111111-1111-1111-1111-111111111111"
B = "22222222-2222-2222-2222-222222222222"
NOTES = {
    "001_notes.sql": """
        create table notes (id serial primary key, owner uuid not null default auth.uid(), body text);
        alter table notes enable row level security;
        create policy own_notes on notes for all to authenticated
          using (owner = (select auth.uid())) with check (owner = (select auth.uid()));
    """
}


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=240)


def _pyproject(pytester: pytest.Pytester, text: str) -> None:
    pytester.path.joinpath("pyproject.toml").write_text(textwrap.dedent(text).lstrip("\n"))


POINT_AT_MIGRATIONS = (
    "Point the plugin at your migrations: --rlscheck-migrations=PATH (a directory, a file or a glob; repeatable), "
    "or in pyproject.toml:",
    "    [tool.rlscheck]",
    '    migrations = ["path/to/migrations"]',
)


def _contains_lines(lines: list[str], *expected: str) -> None:
    """``expected`` appear in ``lines`` one after the other (exact lines, no patterns)."""
    start = lines.index(expected[0]) if expected[0] in lines else -1
    assert start >= 0, f"{expected[0]!r} not in the output:\n" + "\n".join(lines)
    assert lines[start : start + len(expected)] == list(expected)


def _no_traceback(result: pytest.RunResult) -> None:
    out = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in out and "INTERNALERROR" not in out


# -- configuration of the wrong type ----------------------------------------------------------


def test_a_tenant_column_of_the_wrong_type_is_a_usage_error_before_the_sweep(pytester: pytest.Pytester) -> None:
    """It used to be a TypeError inside a sweep item, after the database was built."""
    write_project(pytester, NOTES)
    _pyproject(
        pytester,
        """
        [tool.rlscheck]
        migrations = ["migrations"]

        [tool.rlscheck.tables."public.notes"]
        tenant_column = 3
        """,
    )
    result = _run(pytester, "--rlscheck")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ['ERROR: *pyproject.toml: [[]tool.rlscheck.tables."public.notes"[]] tenant_column must be a column name, got 3']
    )
    assert "collected" not in result.stdout.str()  # refused before anything was built
    _no_traceback(result)


def test_a_sub_that_is_no_uuid_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """auth.uid() casts the sub to uuid: a name there made every check 'could not be checked'."""
    write_project(pytester, NOTES)
    _pyproject(
        pytester,
        f"""
        [tool.rlscheck]
        migrations = ["migrations"]

        [tool.rlscheck.principals.alice]
        sub = "alice"

        [tool.rlscheck.principals.bob]
        sub = "{B}"
        """,
    )
    result = _run(pytester, "--rlscheck", "--rlscheck-fail-on=error")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "[tool.rlscheck.principals.alice] sub must be the user's id as a UUID string (auth.uid() casts it to uuid), "
        f'e.g. sub = "{A}", got \'alice\'' in result.stderr.str()
    )
    _no_traceback(result)


# -- integer tenants --------------------------------------------------------------------------

TEAMS = {
    "001_tenants.sql": """
        create table memberships (user_id uuid not null, org_id bigint not null, team_id uuid not null);
        alter table memberships enable row level security;
        create policy mine on memberships for select to authenticated using (user_id = (select auth.uid()));

        -- tenant column org_id: bigint
        create table notes (id serial primary key, org_id bigint not null, body text);
        create index on notes (org_id);
        alter table notes enable row level security;
        create policy by_org on notes for all to authenticated
          using (org_id in (select m.org_id from memberships m where m.user_id = (select auth.uid())))
          with check (org_id in (select m.org_id from memberships m where m.user_id = (select auth.uid())));

        -- tenant column team_id: uuid, and a view over it
        create table docs (id serial primary key, team_id uuid not null, body text);
        create index on docs (team_id);
        alter table docs enable row level security;
        create policy by_team on docs for all to authenticated
          using (team_id in (select m.team_id from memberships m where m.user_id = (select auth.uid())))
          with check (team_id in (select m.team_id from memberships m where m.user_id = (select auth.uid())));
        create view team_docs with (security_invoker = true) as select * from docs;
        grant select on team_docs to authenticated;
    """
}
TEAMS_SEED = f"""
    insert into memberships values ('{A}', 5, 'aaaaaaaa-0000-0000-0000-000000000001'),
                                   ('{B}', 6, 'bbbbbbbb-0000-0000-0000-000000000002');
    insert into notes (org_id, body) values (5, 'a1'), (5, 'a2'), (6, 'b1');
    insert into docs (team_id, body) values ('aaaaaaaa-0000-0000-0000-000000000001', 'a'),
                                            ('bbbbbbbb-0000-0000-0000-000000000002', 'b');
"""


def test_an_integer_tenant_is_checked_where_it_fits_and_refused_where_it_cannot(pytester: pytest.Pytester) -> None:
    """tenant = 5 is right for a bigint tenant column. Against a uuid column every row looked
    like another tenant's: the view over it was reported as a LEAK that is none. Now that is
    one configuration failure naming the principal, the column and its type."""
    write_project(pytester, TEAMS, TEAMS_SEED)
    _pyproject(
        pytester,
        f"""
        [tool.rlscheck]
        migrations = ["migrations"]
        seed = ["seed.sql"]
        tenant_column = "org_id"

        [tool.rlscheck.tables."public.docs"]
        tenant_column = "team_id"

        [tool.rlscheck.tables."public.team_docs"]
        tenant_column = "team_id"

        [tool.rlscheck.principals.alice]
        sub = "{A}"
        tenant = 5

        [tool.rlscheck.principals.bob]
        sub = "{B}"
        tenant = 6
        """,
    )
    result = _run(pytester, "--rlscheck", "-m", "rlscheck", "-k", "tenant-leak or principals", "-rA")
    lines = result.stdout.lines
    assert "PASSED rlscheck::public.notes::tenant-leak" in lines  # tenant = 5 against org_id bigint
    assert any(line.startswith("public.notes ") and " verified " in line for line in lines)
    out = result.stdout.str()
    assert "rlscheck::public.docs::tenant-leak" not in out and "rlscheck::public.team_docs::tenant-leak" not in out
    assert "LEAK" not in out
    result.assert_outcomes(passed=2, failed=1)  # notes and memberships (org_id) verified
    assert any(line.startswith("FAILED rlscheck::config::principals") for line in lines)
    _contains_lines(
        lines,
        "[tool.rlscheck.principals]: tenants the tenant columns cannot hold:",
        "  - alice: tenant = 5 is not a valid uuid (the type of public.docs.team_id and 1 more tenant column(s))",
        "  - bob: tenant = 6 is not a valid uuid (the type of public.docs.team_id and 1 more tenant column(s))",
    )
    assert "tenant-leak was not checked on public.docs, public.team_docs: the isolation checks compare" in out
    assert 'Fix: set each principal\'s tenant to the id of their tenant as those columns store it (uuid: e.g. tenant = "' in out
    _no_traceback(result)


# -- --rlscheck-report ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where, reason",
    [
        ("a-file/report.json", "Not a directory"),  # also as root: nothing goes under a regular file
        ("a-file/sub/report.md", "Not a directory (a-file/sub)"),
        ("a-directory.sarif", "Is a directory"),
    ],
)
def test_an_unwritable_report_path_is_a_usage_error_before_the_sweep(
    pytester: pytest.Pytester, where: str, reason: str
) -> None:
    write_project(pytester, NOTES)
    pytester.path.joinpath("a-file").write_text("not a directory\n")
    pytester.path.joinpath("a-directory.sarif").mkdir()
    pytester.path.joinpath("old.json").write_text("old")
    # the first two could be written: an existing file is left as it is, the directories a
    # report creates are removed again
    result = _run(pytester, "--rlscheck", "--rlscheck-migrations=migrations", "--rlscheck-report=old.json",
                  "--rlscheck-report=new/dir/ok.json", f"--rlscheck-report={where}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: --rlscheck-report {where}: cannot write the report there: {reason}" in result.stderr.str()
    assert "collected" not in result.stdout.str()
    assert not pytester.path.joinpath("new").exists()
    assert pytester.path.joinpath("old.json").read_text() == "old"
    assert pytester.path.joinpath("a-file").read_text() == "not a directory\n"
    _no_traceback(result)


# -- nothing to apply, nothing to check -------------------------------------------------------


def test_an_empty_migrations_directory_is_a_warning(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("db").mkdir()
    pytester.path.joinpath("db", "README.md").write_text("migrations go here\n")
    _pyproject(pytester, '[tool.rlscheck]\nmigrations = ["db"]\n')
    pytester.makepyfile("def test_one():\n    pass\n")
    result = _run(pytester)
    result.assert_outcomes(passed=1, warnings=1)
    assert (
        f"RlscheckWarning: rlscheck: no migration will be applied from {pytester.path / 'db'}: it holds no .sql "
        "file (files in its subdirectories are not read). It comes from migrations = ['db'] in "
        f"{pytester.path / 'pyproject.toml'}." in result.stdout.str()
    )


def test_a_sweep_without_migrations_says_where_it_looked(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--rlscheck")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # not 5, "no tests ran", in silence
    result.assert_outcomes(failed=1)
    _contains_lines(
        result.stdout.lines,
        "Nothing to check: the sweep found no table, view or function in the schema(s) public (the default).",
        "Migrations applied: none. Looked for the default supabase/migrations, which does not exist in "
        f"{pytester.path}; neither --rlscheck-migrations nor [tool.rlscheck] migrations is set.",
        *POINT_AT_MIGRATIONS,
    )
    assert any(line.startswith("FAILED rlscheck::schema::nothing-to-check") for line in result.stdout.lines)
    _no_traceback(result)


def test_migrations_that_create_nothing_in_the_swept_schemas_are_listed(pytester: pytest.Pytester) -> None:
    write_project(
        pytester,
        {
            "001_app.sql": "create schema app;\ncreate table app.accounts (id int primary key);\n",
            "002_more.sql": "create table app.invoices (id int primary key);\n",
        },
    )
    result = _run(pytester, "--rlscheck", "--rlscheck-migrations=migrations", "-m", "rlscheck")
    result.assert_outcomes(failed=1)
    _contains_lines(
        result.stdout.lines,
        "Nothing to check: the sweep found no table, view or function in the schema(s) public (the default).",
        "Migrations applied: 2 file(s), from --rlscheck-migrations=migrations:",
        "  migrations/001_app.sql",
        "  migrations/002_more.sql",
        "They create no table, view or function in public.",
        "Tables or views exist in other schemas: app (2). If the API exposes them, sweep them: "
        '[tool.rlscheck] schemas = ["public", "app"].',
        *POINT_AT_MIGRATIONS,
    )
