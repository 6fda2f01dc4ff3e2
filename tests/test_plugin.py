"""The plugin from a user's seat: pytest runs in a subprocess on a project of its own."""

from __future__ import annotations

import json
import textwrap

import pytest

from conftest import write_project

SCHEMA = {
    "20240101000000_init.sql": """
        create table notes (id serial primary key, owner uuid not null default auth.uid(), body text);
        alter table notes enable row level security;
        create policy own_notes on notes for all to authenticated
          using (owner = (select auth.uid())) with check (owner = (select auth.uid()));
    """
}
A = "11111111-1111-1111-1111-111111111111"
B = "22222222-2222-2222-2222-222222222222"
SEED = f"insert into notes (owner, body) values ('{A}', 'a1'), ('{A}', 'a2'), ('{B}', 'b1');"


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=240)


def test_broken_migration_is_a_clean_file_line_error(pytester: pytest.Pytester) -> None:
    write_project(
        pytester,
        {
            "20240101000000_init.sql": "create table conversations (id int, started_at timestamptz);",
            "20240102000000_index.sql": """
                -- hourly report
                create index concurrently conversations_hour
                  on conversations (DATE_TRUNC('hour', started_at));
            """,
        },
    )
    pytester.makepyfile("def test_one(rls):\n    pass\n\ndef test_two(rls):\n    pass\n")
    result = _run(pytester, "--rlscheck-migrations", "migrations")
    assert result.ret == 1
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    assert (
        "migrations/20240102000000_index.sql:2:1: migration failed: ERROR 42P17: "
        "functions in index expression must be marked IMMUTABLE" in out
    )
    assert "database setup failed (reported in full above): migrations/20240102000000_index.sql:2:1" in out
    assert "Traceback" not in out and "psycopg" not in out


def test_a_broken_migration_keeps_its_location_in_the_sarif_report_under_xdist(pytester: pytest.Pytester) -> None:
    """The controller builds the template; the workers, that run the items, get its error as
    data (file, line, column), not as text to read them back from."""
    write_project(pytester, {"20240101000000_init.sql": "-- notes\ncreate table notes (id int, body txt);\n"})
    reports = {}
    for name, xdist in (("plain", ()), ("xdist", ("-n", "2"))):
        result = _run(pytester, *xdist, "--rlscheck", "-m", "rlscheck", "--rlscheck-migrations", "migrations",
                      f"--rlscheck-report={name}.sarif", f"--rlscheck-report={name}.json")
        assert result.ret == 1
        result.stdout.fnmatch_lines(["*FAILED*rlscheck::migrations::migration-failed*"])
        assert "migrations/20240101000000_init.sql:2:34: migration failed: ERROR 42704: type \"txt\" does not exist" in (
            result.stdout.str()
        )
        reports[name] = (
            json.loads((pytester.path / f"{name}.sarif").read_text())["runs"][0]["results"],
            json.loads((pytester.path / f"{name}.json").read_text())["findings"],
        )
    (entry,), (finding,) = reports["xdist"]
    assert entry["ruleId"] == "migration-failed"
    assert entry["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "migrations/20240101000000_init.sql"},
        "region": {"startLine": 2, "startColumn": 34},
    }
    assert (finding["object"], finding["file"], finding["line"]) == (
        "migrations/20240101000000_init.sql", "migrations/20240101000000_init.sql", 2
    )
    assert reports["xdist"] == reports["plain"]  # as without xdist


def test_raise_with_bare_percent_is_reported_at_its_line(pytester: pytest.Pytester) -> None:
    write_project(
        pytester,
        {"001_progress.sql": "do $$\nbegin\n  raise notice 'migrated 100% of rows';\nend\n$$;\n"},
    )
    pytester.makepyfile("def test_one(rls):\n    pass\n")
    result = _run(pytester, "--rlscheck-migrations", "migrations/001_progress.sql")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["migrations/001_progress.sql:3:3: migration failed: ERROR 42601: too few parameters specified for RAISE"]
    )
    assert "Traceback" not in result.stdout.str()


def test_supabase_project_layout_is_found_without_configuration(pytester: pytest.Pytester) -> None:
    migrations = pytester.path / "supabase" / "migrations"
    migrations.mkdir(parents=True)
    for name, text in SCHEMA.items():
        migrations.joinpath(name).write_text(textwrap.dedent(text))
    (pytester.path / "supabase" / "seed.sql").write_text(SEED)
    pytester.makepyfile(
        f"""
        def test_isolation(rls):
            assert rls.scalar("select count(*) from notes") == 3
            with rls.as_user("{A}"):
                assert rls.fetchall("select body from notes order by body") == [("a1",), ("a2",)]
            with rls.as_user("{B}"):
                rls.execute("insert into notes (body) values ('b2')")
                assert rls.scalar("select count(*) from notes") == 2
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["rlscheck: 1 migration file(s), 1 seed file(s); Supabase shim when needed*"])


def test_shim_forced_off_leaves_auth_undefined(pytester: pytest.Pytester) -> None:
    write_project(pytester, SCHEMA)
    pytester.makepyfile("def test_one(rls):\n    pass\n")
    result = _run(pytester, "--rlscheck-migrations", "migrations", "--rlscheck-no-supabase")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["migrations/20240101000000_init.sql:1:* ERROR 3F000: schema \"auth\" does not exist"])


def test_identity_never_leaks_even_when_a_test_fails_mid_block(pytester: pytest.Pytester) -> None:
    write_project(pytester, SCHEMA, SEED)
    pytester.makepyfile(
        f"""
        def test_fails_while_impersonating(rls):
            with rls.as_user("{A}"):
                rls.execute("select set_config('request.jwt.claim.sub', '{B}', false)")
                assert rls.scalar("select count(*) from notes") == 99

        def test_next_test_is_clean(rls):
            assert rls.scalar("select current_user") == "postgres"
            assert rls.scalar("select auth.uid()") is None
            assert rls.scalar("select count(*) from notes") == 3
        """
    )
    result = _run(pytester, "--rlscheck-migrations", "migrations", "--rlscheck-seed", "seed.sql")
    result.assert_outcomes(failed=1, passed=1)


def test_a_test_that_commits_cannot_leak_rows(pytester: pytest.Pytester) -> None:
    write_project(pytester, SCHEMA, SEED)
    pytester.makepyfile(
        """
        def test_commits(rls):
            rls.connection.execute("COMMIT")
            rls.execute("insert into notes (owner, body) values (gen_random_uuid(), 'leaked')")

        def test_after(rls):
            assert rls.scalar("select count(*) from notes") == 3
        """
    )
    result = _run(pytester, "--rlscheck-migrations", "migrations", "--rlscheck-seed", "seed.sql")
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*test_commits ended the test transaction itself*rls_fresh_db*"])


def test_fresh_database_allows_commits_and_several_connections(pytester: pytest.Pytester) -> None:
    write_project(pytester, SCHEMA, SEED)
    pytester.makepyfile(
        f"""
        import pytest
        NAMES = []

        def test_fixture(rls_fresh_db):
            NAMES.append(rls_fresh_db.scalar("select current_database()"))
            with rls_fresh_db.as_user("{A}"):
                rls_fresh_db.execute("insert into notes (body) values ('committed')")
                assert rls_fresh_db.scalar("select current_user") == "authenticated"
            assert rls_fresh_db.scalar("select current_user") == "postgres"
            with rls_fresh_db.connect() as other:
                assert other.execute("select count(*) from notes").fetchone() == (4,)

        @pytest.mark.rls_fresh_db
        def test_marker(rls):
            NAMES.append(rls.scalar("select current_database()"))
            assert rls.scalar("select count(*) from notes") == 3  # the first test's commit is gone

        def test_shared_database_is_untouched_and_clones_are_dropped(rls):
            assert rls.scalar("select count(*) from notes") == 3
            assert len(set(NAMES)) == 2
            left = rls.scalar("select count(*) from pg_database where datname = any(%s)", [NAMES])
            assert left == 0
        """
    )
    result = _run(pytester, "--rlscheck-migrations", "migrations", "--rlscheck-seed", "seed.sql")
    result.assert_outcomes(passed=3)


def test_xdist_workers_share_one_template_and_get_their_own_database(pytester: pytest.Pytester) -> None:
    write_project(pytester, SCHEMA, SEED)
    pytester.makepyfile(
        """
        import pytest

        import pathlib

        @pytest.mark.parametrize("n", range(6))
        def test_worker(rls, n):
            rls.execute("insert into notes (owner, body) values (gen_random_uuid(), 'mine')")
            assert rls.scalar("select count(*) from notes") == 4
            name = rls.scalar("select current_database()")
            host = rls.connection.info.host
            out = pathlib.Path(__file__).parent / f"seen-{n}"
            out.write_text(f"{name} {host} {rls.database.name}")
        """
    )
    result = _run(pytester, "-n", "2", "--rlscheck-migrations", "migrations", "--rlscheck-seed", "seed.sql")
    result.assert_outcomes(passed=6)
    seen = [p.read_text().split() for p in pytester.path.glob("seen-*")]
    assert len(seen) == 6
    assert len({s[0] for s in seen}) == 2  # one database per worker
    assert {s[0].rsplit("_", 1)[1] for s in seen} == {"gw0", "gw1"}
    assert len({s[1] for s in seen}) == 1  # one server


def test_malformed_configuration_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject='[tool.rlscheck]\nmigration = ["db"]\n')
    pytester.makepyfile("def test_one():\n    pass\n")
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "pyproject.toml: unknown key 'migration' in [tool.rlscheck]. Did you mean 'migrations'?" in result.stderr.str()


def test_missing_migration_path_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")
    result = _run(pytester, "--rlscheck-migrations", "db/migratons")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rlscheck-migrations: 'db/migratons' is not a file, a directory or a pattern*"])


def test_an_option_value_read_as_a_test_path_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """pytest chooses the rootdir and config before plugins load: `--rlscheck-seed other/x.sql`
    would make it read other/'s pyproject.toml. We say so instead of using the wrong config."""
    project = pytester.mkdir("project")
    other = pytester.mkdir("other")
    (project / "pyproject.toml").write_text('[tool.pytest.ini_options]\n\n[tool.rlscheck]\nmigrations = "db"\n')
    (project / "db").mkdir()
    (project / "db" / "001_t.sql").write_text("create table t (id int primary key);\n")
    (other / "pyproject.toml").write_text('[tool.pytest.ini_options]\n\n[tool.rlscheck]\nmigrations = "nowhere"\n')
    (other / "seed.sql").write_text("insert into t values (1);\n")
    (project / "test_one.py").write_text("def test_one(rls):\n    assert rls.scalar('select count(*) from t') == 1\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        result = _run(pytester, "--rlscheck-seed", str(other / "seed.sql"))
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        err = result.stderr.str()
        assert f"pytest took the value in `--rlscheck-seed {other / 'seed.sql'}` for a test path" in err
        assert f"Write the option with '=': --rlscheck-seed={other / 'seed.sql'}" in err
        result = _run(pytester, f"--rlscheck-seed={other / 'seed.sql'}")
        result.assert_outcomes(passed=1)
        # a value that is no path changes nothing
        result = _run(pytester, f"--rlscheck-seed={other / 'seed.sql'}", "--rlscheck-fail-on", "error")
        result.assert_outcomes(passed=1)
        # nor does one when the rootdir and config are given (here through PYTEST_ADDOPTS)
        (project / "ci").mkdir()
        (project / "ci" / "pytest.ini").write_text("[pytest]\n")
        mp.setenv("PYTEST_ADDOPTS", f"--rootdir={project} -c {project / 'ci' / 'pytest.ini'}")
        result = _run(pytester, "--rlscheck-seed", str(other / "seed.sql"))
        result.assert_outcomes(passed=1)


def test_tests_without_the_fixture_start_no_server(pytester: pytest.Pytester) -> None:
    write_project(pytester, SCHEMA)
    pytester.makepyfile(
        """
        def test_plain(rlscheck_session):
            assert not rlscheck_session.server_started

        def test_with_rls(rls, rlscheck_session):
            assert rlscheck_session.server_started
        """
    )
    result = _run(pytester, "--rlscheck-migrations", "migrations")
    result.assert_outcomes(passed=2)
