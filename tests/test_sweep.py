"""`pytest --rlscheck` from a user's seat: items, selection, severities, ignores, reports."""

from __future__ import annotations

import json

import pytest

from conftest import EXAMPLE_CONFIG, SEED, example_project
from pytest_rlscheck.catalog import Catalog

# What the sweep checks on the worked example, written down from sql/migrations (not read
# back from a run): each table, view and SECURITY DEFINER function gets one item per rule
# that applies to its kind. A rule added to the sweep belongs in these lists.
EXAMPLE_TABLES = ("public.organizations", "public.organization_members", "public.domains", "public.conversations",
                  "public.messages")
EXAMPLE_VIEWS = ("public.conversations_with_stats",)
EXAMPLE_DEFINERS = ("private.get_user_organization_ids(p_user_id uuid)", "private.get_user_domain_ids(p_user_id uuid)")
TABLE_RULES = ("auth-per-row", "command-uncovered", "insert-without-select", "multiple-permissive", "no-primary-key",
               "policy-always-true", "policy-rls-disabled", "rls-disabled", "rls-no-policy", "tenant-column-nullable",
               "tenant-leak", "unindexed-fk", "unindexed-policy-column", "user-metadata-in-policy")
VIEW_RULES = ("tenant-leak", "view-bypasses-rls")
DEFINER_RULES = ("definer-exposed", "definer-search-path")
#: rules that apply to some objects only: a unique key without the tenant column, a table the policies read
#: for authorization
TARGETED = (("public.domains", "existence-oracle"), ("public.organization_members", "tenant-escalation"))
EXAMPLE_CHECKS = frozenset(
    f"rlscheck::{name}::{rule}"
    for names, rules in ((EXAMPLE_TABLES, TABLE_RULES), (EXAMPLE_VIEWS, VIEW_RULES), (EXAMPLE_DEFINERS, DEFINER_RULES))
    for name in names
    for rule in rules
) | {f"rlscheck::{name}::{rule}" for name, rule in TARGETED}


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rlscheck", *args, timeout=300)


def test_clean_example_passes_with_a_summary(pytester: pytest.Pytester) -> None:
    example_project(pytester)
    pytester.makepyfile("def test_user_test():\n    pass\n")
    result = _run(pytester, "-rA")
    assert result.ret == 0
    out = result.stdout.str()
    assert "PASSED rlscheck::public.conversations::auth-per-row" in out
    assert "PASSED rlscheck::public.messages::tenant-leak" in out
    assert "PASSED test_clean_example_passes_with_a_summary.py::test_user_test" in out
    result.stdout.fnmatch_lines(
        [
            "*= rlscheck =*",
            "table * RLS * S I U D * auth.uid() sel/upd/del * isolation * err warn info",
            f"public.conversations * on * 1 1 1 1 * 1/4/1 ({SEED.total.conversations} rows) * verified * 0 * 0 * 0",
        ]
    )


def test_findings_fail_items_by_severity_and_name_the_fix(pytester: pytest.Pytester) -> None:
    example_project(
        pytester,
        """
        alter policy "Members can view their memberships" on public.organization_members using (user_id = auth.uid());
        alter table public.conversations add column assigned_to uuid references auth.users (id);
        """,
    )
    result = _run(pytester, "-m", "rlscheck")
    assert result.ret == 1
    result.assert_outcomes(failed=1, passed=len(EXAMPLE_CHECKS) - 1)  # the added column is no new object
    out = result.stdout.str()
    assert "FAILED rlscheck::public.organization_members::auth-per-row" in out
    # where the policy the fix changes was last altered: the added migration's first line
    assert "[warn] auth-per-row on public.organization_members (supabase/migrations/20250101000000_change.sql:2)" in out
    assert 'ALTER POLICY "Members can view their memberships" ON "public"."organization_members" USING ((user_id = (select auth.uid())));' in out
    assert f"measured on {SEED.total.members} rows" in out  # organization_members: one member per tenant
    # info findings pass at the default threshold, and are listed in the summary
    assert "info  unindexed-fk public.conversations" in out
    stricter = _run(pytester, "-m", "rlscheck", "--rlscheck-fail-on=info")
    assert "FAILED rlscheck::public.conversations::unindexed-fk" in stricter.stdout.str()
    laxer = _run(pytester, "-m", "rlscheck", "--rlscheck-fail-on=error")
    assert laxer.ret == 0


def test_items_can_be_selected_and_deselected(pytester: pytest.Pytester) -> None:
    example_project(pytester, "alter policy \"Members can view their memberships\" on public.organization_members using (user_id = auth.uid());")
    pytester.makepyfile("def test_user_test():\n    pass\n")
    # one auth-per-row item per table (organization_members fails); the other checks and the user's test deselected
    only_rule = _run(pytester, "-k", "auth-per-row")
    assert only_rule.parseoutcomes() == {
        "failed": 1, "passed": len(EXAMPLE_TABLES) - 1, "deselected": len(EXAMPLE_CHECKS) - len(EXAMPLE_TABLES) + 1
    }
    deselected = _run(pytester, "--deselect", "rlscheck::public.organization_members::auth-per-row", "-m", "rlscheck")
    assert deselected.ret == 0
    deselected.assert_outcomes(passed=len(EXAMPLE_CHECKS) - 1, deselected=2)  # that check and the user's test
    users_only = _run(pytester, "-m", "not rlscheck")
    users_only.assert_outcomes(passed=1, deselected=len(EXAMPLE_CHECKS))
    users_only.stdout.fnmatch_lines(["rlscheck: 0 checks of the schema sweep will run, and 1 of the project's own tests"])
    # -m rlscheck deselects the project's tests: the line under "collected" says what runs
    sweep_only = _run(pytester, "-m", "rlscheck", "-rA")
    sweep_only.assert_outcomes(failed=1, passed=len(EXAMPLE_CHECKS) - 1, deselected=1)
    sweep_only.stdout.fnmatch_lines(
        [f"rlscheck: {len(EXAMPLE_CHECKS)} checks of the schema sweep will run (the project's own tests are not selected)"]
    )
    ran = {line.split(" ", 1)[1].split(" - ")[0] for line in sweep_only.stdout.lines
           if line.startswith(("PASSED rlscheck::", "FAILED rlscheck::"))}
    assert ran == EXAMPLE_CHECKS


def test_ignores_need_a_reason_and_stale_ones_are_reported(pytester: pytest.Pytester) -> None:
    example_project(
        pytester,
        "alter table public.conversations add column assigned_to uuid references auth.users (id);",
        config="""
        [tool.rlscheck.ignore]
        "unindexed-fk:public.conversations" = "assignment is rare; the index costs more than it saves"
        "no-primary-key:public.domains" = "left over"
        "unindexed-fk:public.nowhere" = "typo"
        """,
    )
    result = _run(pytester, "-m", "rlscheck", "--rlscheck-fail-on=info", "-rfs")
    out = result.stdout.str()
    assert "pyproject.toml:1: unindexed-fk:public.conversations ignored in [tool.rlscheck.ignore]: assignment is rare" in out
    assert "FAILED rlscheck::config::ignore" in out
    assert "'no-primary-key:public.domains': no-primary-key finds nothing on public.domains; remove the entry" in out
    assert "'unindexed-fk:public.nowhere': no object 'public.nowhere'" in out

    pytester.makefile(".toml", pyproject='[tool.rlscheck.ignore]\n"unindexed-fk:public.x" = ""\n')
    bad = _run(pytester)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "'unindexed-fk:public.x' needs a reason" in bad.stderr.str()


def test_a_migration_that_fails_is_one_error_item(pytester: pytest.Pytester) -> None:
    example_project(pytester, "create index concurrently idx_hour on public.conversations (date_trunc('hour', started_at));")
    result = _run(pytester, "-m", "rlscheck", "--rlscheck-report=out.sarif")
    assert result.ret == 1
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "FAILED rlscheck::migrations::migration-failed" in out
    (entry,) = json.loads((pytester.path / "out.sarif").read_text())["runs"][0]["results"]
    region = entry["locations"][0]["physicalLocation"]
    assert entry["ruleId"] == "migration-failed" and region["region"]["startLine"] == 1
    assert region["artifactLocation"]["uri"] == "supabase/migrations/20250101000000_change.sql"
    assert "supabase/migrations/20250101000000_change.sql:1:1: migration failed: ERROR 42P17" in out
    assert "Traceback" not in out


def test_reports_json_markdown_and_sarif(pytester: pytest.Pytester) -> None:
    example_project(pytester, "alter table public.messages alter column organization_id drop not null;")
    result = _run(
        pytester, "-m", "rlscheck", "--rlscheck-report=out/report.json", "--rlscheck-report=out/report.md",
        "--rlscheck-report=out/report.sarif",
    )
    assert result.ret == 1
    data = json.loads((pytester.path / "out/report.json").read_text())
    (finding,) = data["findings"]
    assert finding["rule"] == "tenant-column-nullable" and finding["severity"] == "warn"
    assert finding["object"] == "public.messages" and "SET NOT NULL" in finding["fix"]
    # the ALTER that made the column nullable, not the CREATE TABLE of the first migration
    assert finding["file"] == "supabase/migrations/20250101000000_change.sql" and finding["line"] == 1
    tables = {t["table"]: t for t in data["tables"]}
    every = "select, insert, update, delete, move, upsert"
    assert tables["public.messages"]["isolation"] == f"verified ({every} as alice/bob)" and tables["public.messages"]["warn"] == 1
    assert data["by_rule"] == {"tenant-column-nullable": 1}
    markdown = (pytester.path / "out/report.md").read_text()
    assert "**0 error(s), 1 warning(s), 0 note(s)**" in markdown
    assert "- **tenant-column-nullable** `public.messages` (supabase/migrations/20250101000000_change.sql:1)" in markdown
    sarif = json.loads((pytester.path / "out/report.sarif").read_text())
    (result_entry,) = sarif["runs"][0]["results"]
    assert sarif["version"] == "2.1.0" and result_entry["level"] == "warning"
    location = result_entry["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "supabase/migrations/20250101000000_change.sql"
    assert location["region"]["startLine"] == finding["line"]
    assert {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]} >= {"rls-disabled", "tenant-leak"}


def test_fuzz_items_report_constraint_defects(pytester: pytest.Pytester) -> None:
    example_project(
        pytester,
        """
        alter table public.messages drop constraint messages_metadata_response_time_positive;
        alter table public.messages add constraint response_time_positive
          check ((metadata ->> 'response_time_ms')::numeric > 0);
        alter table public.messages alter column metadata drop not null;
        """,
    )
    result = _run(
        pytester, "-m", "rlscheck", "-rA", "--rlscheck-fuzz", "--rlscheck-fuzz-examples=300", "--rlscheck-report=out.json"
    )
    out = result.stdout.str()
    assert result.ret == 1
    assert "FAILED rlscheck::public.messages.metadata::constraint-fuzz" in out
    assert "PASSED rlscheck::public.conversations.metadata::constraint-fuzz" in out
    assert "constraint response_time_positive raises 22P02" in out
    findings = {(f["rule"], f["object"]) for f in json.loads((pytester.path / "out.json").read_text())["findings"]}
    assert findings == {
        ("constraint-raises", "public.messages.metadata"),
        ("constraint-admits-null", "public.messages.metadata"),
    }


def test_without_principals_two_are_synthesized_and_isolation_is_measured(pytester: pytest.Pytester) -> None:
    # a table no policy opens has nothing to verify, and gets no row
    example_project(pytester, "create table public.vault (id int primary key); alter table public.vault enable row level security;")
    (pytester.path / "pyproject.toml").write_text("[tool.rlscheck]\n")  # no principals
    result = _run(pytester, "-m", "rlscheck", "--rlscheck-report=out.json")
    assert result.ret == 0, result.stdout.str()
    data = json.loads((pytester.path / "out.json").read_text())
    assert not [f for f in data["findings"] if f["rule"] == "tenant-leak"], data["findings"]
    isolation = {t["table"]: t["isolation"] for t in data["tables"]}
    for table in ("public.organizations", "public.organization_members", "public.conversations", "public.messages",
                  "public.domains"):
        assert isolation[table].startswith("verified"), isolation
    made = data["synthesized"]
    assert [p["name"] for p in made["principals"] if p["synthesized"]] == ["alice", "bob"]
    assert made["tenant_root"] == "public.organizations"
    # the seed's tenants are not the synthesized users': each table gets a row per new tenant
    assert made["rows"] == {t: 2 for t in ("public.organizations", "public.organization_members", "public.domains",
                                             "public.conversations", "public.messages")}
    assert "public.vault" not in made["rows"]
    result.stdout.fnmatch_lines(["synthesized principals (none configured): alice (sub *, tenant *), bob (sub *"])
    assert any(f["rule"] == "rls-no-policy" and f["object"] == "public.vault" for f in data["findings"])


def test_an_uncovered_command_fails_only_when_the_config_expects_it(pytester: pytest.Pytester) -> None:
    example_project(
        pytester,
        "drop policy messages_delete on public.messages;",
        '''
        [tool.rlscheck.tables."public.messages"]
        commands = ["SELECT", "INSERT", "UPDATE", "DELETE"]
        ''',
    )
    result = _run(pytester, "-m", "rlscheck", "-rA", "-k", "command-uncovered")
    result.stdout.fnmatch_lines(["FAILED rlscheck::public.messages::command-uncovered*"])
    assert "DELETE is not covered by any policy although the configuration expects it" in result.stdout.str()
    (pytester.path / "pyproject.toml").write_text("[tool.rlscheck]\n" + EXAMPLE_CONFIG)  # granted, not expected
    result = _run(pytester, "-m", "rlscheck", "-rA", "-k", "command-uncovered")
    result.stdout.fnmatch_lines(["PASSED rlscheck::public.messages::command-uncovered*"])


def test_sweep_under_xdist(pytester: pytest.Pytester) -> None:
    example_project(pytester, "create policy conversations_read_all on public.conversations for select to authenticated using (true);")
    result = _run(pytester, "-n", "2", "-m", "rlscheck", "--rlscheck-report=out.json")
    data = json.loads((pytester.path / "out.json").read_text())
    assert {(f["rule"], f["object"]) for f in data["findings"]} == {
        ("policy-always-true", "public.conversations"),
        ("multiple-permissive", "public.conversations"),
        ("tenant-leak", "public.conversations"),
        ("tenant-leak", "public.conversations_with_stats"),
    }
    assert result.ret == 1


def test_catalog_reads_a_fixed_number_of_queries(rls) -> None:
    """One query per kind, whatever the number of tables: relations, columns, constraints,
    indexes, policies, grants, view dependencies, view queries, triggers, function grants,
    functions, and the functions and operators the policies' trees name."""

    def queries_for(tables: int) -> int:
        for i in range(tables):
            rls.execute(f"create table public.q{tables}_{i} (id int primary key, organization_id uuid)")
            rls.execute(f"create policy p on public.q{tables}_{i} using (true)")
        counter = _Counting(rls.connection)
        Catalog.load(counter, schemas=["public"], functions=True)
        return counter.count

    assert queries_for(1) == queries_for(50) == 13


class _Counting:
    def __init__(self, conn) -> None:
        self.conn = conn
        self.info = conn.info  # the server version picks the query text, without a query
        self.count = 0

    def execute(self, *args, **kwargs):
        self.count += 1
        return self.conn.execute(*args, **kwargs)
