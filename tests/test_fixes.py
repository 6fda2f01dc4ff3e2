"""The SQL a finding shows as its fix names objects as PostgreSQL needs them: quoted, so that
it runs as shown whatever the names (capitals, spaces, quotes)."""

from __future__ import annotations

from conftest import ALICE
from pytest_rlscheck.sweep import Sweep

AWKWARD = '''
create table public."Team Notes" (id bigint primary key, "Owner Id" uuid, body text);
grant select, insert on public."Team Notes" to anon, authenticated;
create table public."Shared ""Docs""" (id bigint primary key, "Org Id" uuid);
grant select on public."Shared ""Docs""" to authenticated;
alter table public."Shared ""Docs""" enable row level security;
create policy "it's ""everyone""" on public."Shared ""Docs""" for select to authenticated using (true);
'''


def _findings(rls, session):
    rls.execute(AWKWARD)
    sweep = Sweep(session)
    sweep.prepare(rls.connection)
    return {(f.rule, f.object.display): f for r in sweep.run_all(rls) for f in r.findings}


def test_fixes_quote_the_names_and_run_as_shown(rls, rlscheck_session) -> None:
    found = _findings(rls, rlscheck_session)
    fix = found[("rls-disabled", "public.Team Notes")].fix
    assert fix.startswith('ALTER TABLE "public"."Team Notes" ENABLE ROW LEVEL SECURITY;')
    rls.execute(fix)  # the whole fix: the rest is an SQL comment
    assert rls.scalar("select relrowsecurity from pg_class where oid = 'public.\"Team Notes\"'::regclass") is True
    always = found[("policy-always-true", 'public.Shared "Docs"')].fix
    expected = 'ALTER POLICY ' + '"it' + "'" + 's ""everyone"""' + ' ON "public"."Shared ""Docs""" USING ('
    assert expected in always, always
    rls.execute(always)  # as printed: nothing to fill in
    # nothing in the schema limits "Org Id": deny-all, said in a comment
    assert "nothing narrower could be read from the schema" in always
    assert rls.scalar(
        "select pg_get_expr(polqual, polrelid) from pg_policy where polname = %s", ['it\'s "everyone"']
    ) == "false"


INSERT_OPEN = '''
create table public."Projects" (id bigint primary key, organization_id uuid not null, title text);
grant select, insert on public."Projects" to authenticated;
alter table public."Projects" enable row level security;
create policy "Projects read" on public."Projects" for select to authenticated
  using (organization_id in (select private.get_user_organization_ids((select auth.uid()))));
create policy "Projects add" on public."Projects" for insert to authenticated with check (true);
'''


def test_an_insert_policy_fix_takes_with_check_only_and_the_schemas_condition(rls, rlscheck_session) -> None:
    """The INSERT policy's fix is ALTER POLICY ... WITH CHECK (PostgreSQL rejects a USING
    there), with the condition a sibling policy writes for the tenant column."""
    rls.execute(INSERT_OPEN)
    sweep = Sweep(rlscheck_session)
    sweep.prepare(rls.connection)
    found = {(f.rule, f.object.display): f for r in sweep.run_all(rls) for f in r.findings}
    fix = found[("policy-always-true", "public.Projects")].fix
    (alter,) = [line for line in fix.splitlines() if line.startswith("ALTER POLICY")]
    assert alter.startswith('ALTER POLICY "Projects add" ON "public"."Projects" WITH CHECK ((organization_id IN'), alter
    assert "USING" not in alter
    assert '-- the condition of policy "Projects read", as PostgreSQL prints it' in fix
    rls.execute(fix)
    using, check = rls.fetchone(
        "select pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid) from pg_policy where polname = 'Projects add'"
    )
    assert using is None and "get_user_organization_ids" in check


def test_a_primary_key_fix_names_the_unique_not_null_columns_the_table_has(rls, rlscheck_session) -> None:
    rls.execute('create table public."Codes" ("Code" text not null unique, label text)')
    sweep = Sweep(rlscheck_session)
    sweep.prepare(rls.connection)
    found = {(f.rule, f.object.display): f for r in sweep.run_all(rls) for f in r.findings}
    fix = found[("no-primary-key", "public.Codes")].fix
    assert fix.startswith('ALTER TABLE "public"."Codes" ADD PRIMARY KEY ("Code");'), fix
    rls.execute(fix)
    assert rls.scalar("select count(*) from pg_constraint where conrelid = 'public.\"Codes\"'::regclass and contype = 'p'") == 1


MERGE_ALL = '''
create table public.boards (id bigint primary key, organization_id uuid not null, shared boolean not null default false);
grant select, insert, update, delete on public.boards to authenticated;
alter table public.boards enable row level security;
create policy boards_members on public.boards for all to authenticated
  using (organization_id in (select private.get_user_organization_ids((select auth.uid()))));
create policy boards_shared on public.boards for select to public using (shared);
'''


def test_merging_a_policy_for_all_keeps_its_other_commands(rls, rlscheck_session) -> None:
    """multiple-permissive: a policy FOR ALL is split (its other commands keep their policies)
    and one for more roles keeps them; the fix runs and leaves one SELECT policy per role."""
    rls.execute(MERGE_ALL)
    sweep = Sweep(rlscheck_session)
    sweep.prepare(rls.connection)
    (finding,) = [f for r in sweep.run_all(rls) for f in r.findings
                  if f.rule == "multiple-permissive" and f.object.display == "public.boards"]
    rls.execute(finding.fix)
    policies = rls.fetchall(
        "select polname, polcmd, polroles::regrole[]::text[] from pg_policy where polrelid = 'public.boards'::regclass order by 1"
    )
    commands = {cmd for _, cmd, roles in policies if "authenticated" in roles}
    assert commands == {"r", "a", "w", "d"}, policies  # SELECT, INSERT, UPDATE, DELETE still covered
    assert sum(1 for _, cmd, roles in policies if cmd in ("r", "*") and "authenticated" in roles) == 1, policies
    sweep.prepare(rls.connection)
    assert not [f for r in sweep.run_all(rls) for f in r.findings if f.rule == "multiple-permissive"]
    with rls.as_user(ALICE):
        rls.execute("select * from public.boards")  # the merged policy is valid for the API
