"""auth-per-row on real Postgres: the seed's plan and the plan with the other scan forced,
and every function a policy calls counted by PostgreSQL (track_functions)."""

from __future__ import annotations

from conftest import ALICE
from test_plans import CLAIM_SUB, NOTES_ROWS, SEQ_SCAN, claim_notes

from pytest_rlscheck.findings import Severity
from pytest_rlscheck.rules import auth_per_row
from pytest_rlscheck.sqlsplit import split

ALICE_NOTES = NOTES_ROWS // 500


def _measure(rls, table: str = "claim_notes"):
    rel = rls.relation(table)
    called = auth_per_row.called_functions(rls, rel, {})
    return auth_per_row.measure(rls, rel, ALICE, auth_per_row.functions(rls), None, called)


def test_a_call_once_in_the_seeds_index_scan_runs_per_row_in_a_sequential_scan(rls) -> None:
    claim_notes(rls)
    findings, measured = _measure(rls)
    (finding,) = findings
    assert finding.severity == Severity.WARN and finding.details["function"] == "current_setting"
    assert finding.details["seed_plan"] == {"scan": "bitmap index scan", "evaluations": 1}
    assert finding.details["forced_plan"] == {"scan": "sequential scan", "settings": SEQ_SCAN, "evaluations": NOTES_ROWS}
    assert "ran once per query in the bitmap index scan the seed data gets" in finding.message
    assert f"{NOTES_ROWS:,} times per query (once per row) when the planner picks a sequential scan" in finding.message
    assert measured["rows"] == ALICE_NOTES and measured["forced"]["scan"] == "sequential scan"
    # the fix is SQL that runs, and makes the call one in the forced plan too
    for statement in split(finding.fix):
        rls.execute(statement.text)
    assert rls.explain("select * from claim_notes", as_user=ALICE, settings=SEQ_SCAN).evaluations("current_setting") == 1
    assert _measure(rls)[0] == []


def test_a_wrapped_call_is_once_in_either_scan_and_no_plan_is_forced(rls) -> None:
    claim_notes(rls, f"owner = (select {CLAIM_SUB})")
    for settings in (None, SEQ_SCAN):
        plan = rls.explain("select * from claim_notes", as_user=ALICE, settings=settings)
        (site,) = [s for s in plan.call_sites("current_setting") if s.evaluations]
        assert site.within == ("InitPlan 1",) and plan.evaluations("current_setting") == 1
    findings, measured = _measure(rls)
    assert findings == [] and "forced" not in measured  # the model says once: nothing to force


def test_a_seed_plan_per_row_reports_the_index_plan_too(rls) -> None:
    """The opposite direction: few rows, a sequential scan runs the call per row; with sequential
    scans priced out the index serves the policy and the call runs once."""
    claim_notes(rls, rows=40)
    (finding,) = _measure(rls)[0]
    assert finding.details["seed_plan"] == {"scan": "sequential scan", "evaluations": 40}
    assert finding.details["forced_plan"]["scan"] in ("index scan", "bitmap index scan")
    assert finding.details["forced_plan"]["evaluations"] == 1
    assert "In an index scan" in finding.message or "In a bitmap index scan" in finding.message


VOLATILE_ME = (
    "create function public.me() returns uuid language plpgsql volatile"
    " as 'begin return auth.uid(); end'"
)
VOLATILE_MEMBER = (
    "create function public.is_mine(o uuid) returns boolean language plpgsql volatile"
    " as 'begin return o = auth.uid(); end'"
)


def test_a_volatile_plpgsql_function_is_counted_by_postgresql(rls) -> None:
    rls.execute(VOLATILE_ME)
    claim_notes(rls, "owner = public.me()")
    plan = rls.explain("select * from claim_notes", as_user=ALICE)
    assert plan.exact_calls("public.me") == plan.evaluations("public.me") == NOTES_ROWS  # never an index condition
    (finding,) = _measure(rls)[0]
    assert finding.details["function"] == "public.me" and finding.details["evaluations"] == NOTES_ROWS
    assert f"ran {NOTES_ROWS:,} times (counted by PostgreSQL)" in finding.message
    assert 'ALTER FUNCTION "public"."me"() STABLE;' in finding.fix
    for statement in split(finding.fix):  # wrap the call, declare it STABLE: once per statement
        rls.execute(statement.text)
    plan = rls.explain("select * from claim_notes", as_user=ALICE, settings=SEQ_SCAN)
    assert plan.exact_calls("public.me") == 1
    assert _measure(rls)[0] == []


def test_a_function_of_the_rows_column_gets_the_set_rewrite(rls) -> None:
    rls.execute(VOLATILE_MEMBER)
    claim_notes(rls, "public.is_mine(owner)")
    findings, measured = _measure(rls)
    (finding,) = findings
    assert "forced" not in measured  # it takes the row: per row in every plan, nothing to force
    assert finding.details["evaluations"] == NOTES_ROWS
    fix = finding.fix.splitlines()
    # nothing in the schema limits "owner" otherwise: the function to write, and the rewrite with it, in comments
    assert '--   ALTER POLICY "own" ON "public"."claim_notes" USING ("owner" IN (SELECT "public"."is_mine_set"()));' in fix
    assert 'ALTER FUNCTION "public"."is_mine"(uuid) STABLE;' in fix


def test_a_set_function_called_once_is_no_finding(rls) -> None:
    """Outside ( SELECT f() ) in the text, once in the plan: PostgreSQL's own count decides."""
    rls.execute(
        "create function public.my_owners() returns setof uuid language plpgsql stable"
        " as 'begin return next auth.uid(); end'"
    )
    claim_notes(rls, "owner in (select o from public.my_owners() as o)")
    for settings in (None, SEQ_SCAN):
        plan = rls.explain("select * from claim_notes", as_user=ALICE, settings=settings)
        assert plan.exact_calls("public.my_owners") == 1
    assert _measure(rls)[0] == []


def test_the_set_rewrite_keeps_the_policys_other_conditions(rls) -> None:
    """Only the call is rewritten: ``AND NOT archived`` stays, so the fix cannot widen access."""
    rls.execute(VOLATILE_MEMBER)
    claim_notes(rls, "public.is_mine(owner)")
    rls.execute("alter table claim_notes add column archived boolean not null default false")
    rls.execute("update claim_notes set archived = (id % 1000 = 0)")
    rls.execute("alter policy own on claim_notes using (public.is_mine(owner) and not archived)")
    (finding,) = _measure(rls)[0]
    (alter,) = [line.removeprefix("--   ") for line in finding.fix.splitlines() if line.startswith("--   ALTER POLICY")]
    assert alter == (
        'ALTER POLICY "own" ON "public"."claim_notes" USING ((("owner" IN (SELECT "public"."is_mine_set"()))'
        " AND (NOT archived)));"
    ), alter
    # with the helper it names, the runnable fix hides the archived rows as before
    rls.execute(
        "create function public.is_mine_set() returns setof uuid language sql stable as 'select auth.uid()'"
    )
    rls.execute(finding.fix)  # runs as printed (the ALTER FUNCTION ... STABLE)
    rls.execute(alter)
    with rls.as_user(ALICE):
        visible = rls.scalar("select count(*) from claim_notes")
    assert visible == ALICE_NOTES // 2  # every other of alice's is archived


def test_a_call_whose_argument_is_not_a_column_gets_no_runnable_rewrite(rls) -> None:
    rls.execute(VOLATILE_MEMBER)
    claim_notes(rls, "public.is_mine(coalesce(owner, gen_random_uuid()))")
    (finding,) = _measure(rls)[0]
    runnable = [s.text for s in split(finding.fix) if "ALTER POLICY" in s.text.upper()]
    assert runnable == [] and "replace each call" in finding.fix and "<" not in finding.fix


def test_a_table_without_rows_is_judged_from_the_policy_model_at_warn(rls) -> None:
    rls.execute("""
        create table public.empty_notes (id bigint generated always as identity primary key, owner uuid, body text);
        alter table public.empty_notes enable row level security;
        grant select, update, delete on public.empty_notes to authenticated;
        create policy "own" on public.empty_notes for select to authenticated using (owner = auth.uid());
        create policy "wrapped" on public.empty_notes for delete to authenticated using (owner = (select auth.uid()));
    """)
    (finding,) = _measure(rls, "empty_notes")[0]
    assert finding.severity is Severity.WARN and finding.details == {"policies": ["own"], "measured": False}
    assert finding.message.startswith('Not measured (0 row(s) to measure on), read from the policies: policy "own" '
                                      "(SELECT) calls auth.uid() outside (select ...)")
    # the fix is the policy with the call wrapped, and it runs: then the model sees no per-row call
    for statement in split(finding.fix):
        rls.execute(statement.text)
    assert _measure(rls, "empty_notes")[0] == []


def test_the_fix_covers_every_policy_and_every_per_row_call_at_once(rls) -> None:
    # two SELECT policies call auth.uid() per row, one of them auth.jwt() too: each fix is the
    # whole rewrite of its policy, so applied in any order they leave no per-row call
    rls.execute(f"""
        create table public.shared_notes (id bigint generated always as identity primary key, owner uuid, team text);
        insert into public.shared_notes (owner, team) select '{ALICE}', 't' || g % 3 from generate_series(1, 50) g;
        alter table public.shared_notes enable row level security;
        grant select on public.shared_notes to authenticated;
        create policy "own" on public.shared_notes for select to authenticated using (owner = auth.uid());
        create policy "team" on public.shared_notes for select to authenticated
          using (team = (auth.jwt() ->> 'team') and owner is distinct from auth.uid());
        analyze public.shared_notes;
    """)
    findings = _measure(rls, "shared_notes")[0]
    assert findings and {p for f in findings for p in f.details["fixed_policies"]} == {"own", "team"}
    statements = list(dict.fromkeys(s.text for f in findings for s in split(f.fix) if s.text.upper().startswith("ALTER")))
    assert len(statements) == 2, statements  # one rewrite per policy, however many functions were measured
    for statement in reversed(statements):
        rls.execute(statement)
    assert _measure(rls, "shared_notes")[0] == []
