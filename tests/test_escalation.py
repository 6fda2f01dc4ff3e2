"""Escalation through membership tables, existence oracles and cached plans, on the worked
example and small changes to it, on a real server."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from conftest import ACME, ALICE, BOB, GLOBEX
from pytest_rlscheck.authorization import authorization_tables, check_values, policy_reads
from pytest_rlscheck.catalog import Catalog
from pytest_rlscheck.escalation import escalation_attempts
from pytest_rlscheck.existence import chosen_by_user, existence_oracle, unique_keys
from pytest_rlscheck.plancache import PLAN_NAME, stale_plan
from pytest_rlscheck.policy_model import Names, body_facts
from pytest_rlscheck.sqlsplit import split

VARIANTS = Path(__file__).resolve().parents[1] / "sql" / "variants"
MEMBERS = "public.organization_members"
PREPARED = "select count(*) from pg_prepared_statements where name = %s"


def apply(rls, variant: str) -> None:
    for statement in split((VARIANTS / f"{variant}.sql").read_text()):
        rls.execute(statement.text)


def catalog(rls) -> Catalog:
    return Catalog.load(rls.connection, schemas=["public"], functions=True)


def members(rls):
    cat = catalog(rls)
    tables = authorization_tables(cat, [r for r in cat.relations if r.kind == "r"], rls.config)
    return cat, tables


# -- the policy model ---------------------------------------------------------------------


def test_function_bodies_name_the_relations_they_read_and_the_session() -> None:
    body = """
    begin
      -- from public.in_a_comment
      select count(*) into v_count from public.members m, teams t join private.roles r on true
        where m.user_id = auth.uid() and current_user = 'x' and s = 'from strings';
      insert into public.audit (at) values (now());
      return query select * from generate_series(1, 3);
    end"""
    facts = body_facts(body, None, Names())
    assert facts.relations == {"v_count", "public.members", "teams", "private.roles", "public.audit"}
    assert facts.session_reads == {"auth.uid", "current_user", "pg_catalog.now"}
    assert body_facts("select $1 + 1", None, Names()).session_reads == frozenset()


def test_the_policies_read_the_membership_table_through_the_functions_they_call(rls) -> None:
    cat = catalog(rls)
    by_name = {r.qualified: r for r in cat.relations}
    reads = policy_reads(cat)
    # plpgsql bodies (private.get_user_*), read as text: organization_members and domains
    assert by_name[MEMBERS].oid in reads[by_name["public.conversations"].oid]
    assert by_name["public.domains"].oid in reads[by_name["public.conversations"].oid]
    assert by_name[MEMBERS].oid not in reads.get(by_name[MEMBERS].oid, ())  # its policy reads only the row


def test_a_subquery_names_its_relation_and_the_column_it_compares_with_the_user(rls) -> None:
    rls.execute("""
        create policy p on public.domains for insert to authenticated with check (exists (
          select 1 from public.organization_members m
          where m.organization_id = domains.organization_id and m.user_id = (select auth.uid())))""")
    rel = rls.relation("public.domains")
    (policy,) = [p for p in rel.policies if p.name == "p"]
    oid = rls.relation(MEMBERS).oid
    assert policy.check_facts.relations == {oid}
    assert policy.check_facts.relation_user_columns == {(oid, "user_id")}


def test_the_example_has_one_membership_table_with_its_roles(rls) -> None:
    cat, tables = members(rls)
    (table,) = tables.values()
    assert table.relation.qualified == MEMBERS
    assert (table.user_column, table.tenant_column) == ("user_id", "organization_id")
    assert table.role_columns == {"role": ("owner", "admin", "member")}
    assert {d.qualified for d in table.dependents} == {
        "public.conversations", "public.messages", "public.domains", "public.organizations"
    }
    assert check_values(table.relation, "user_id") == ()


# -- escalation ---------------------------------------------------------------------------


def test_a_membership_table_the_user_cannot_write_costs_no_query(rls, alice, bob) -> None:
    _, tables = members(rls)
    (table,) = tables.values()
    assert escalation_attempts(rls, table, alice, bob) == []


def test_joining_another_tenant_is_measured_and_leaves_nothing(rls, alice, bob) -> None:
    apply(rls, "tenant_escalation_join")
    _, tables = members(rls)
    (table,) = tables.values()
    attempts = escalation_attempts(rls, table, alice, bob, exhaustive=True)
    joins = [a for a in attempts if a.kind == "join"]
    assert [a.outcome for a in joins] == ["done"] * 3  # owner, admin, member
    gains = {(g.table, g.operation): (g.before, g.after) for g in joins[0].gains}
    assert gains["public.conversations", "select"] == (1200, 2132)
    assert gains["public.organizations", "select"] == (1, 2)
    assert GLOBEX in joins[0].statement and ALICE in joins[0].statement and '"public"."organization_members"' in joins[0].statement
    # rolled back: no membership of alice in Globex, and the test acts as the owner again
    assert rls.scalar(f"select count(*) from {MEMBERS} where user_id = %s and organization_id = %s", [ALICE, GLOBEX]) == 0
    assert rls.identity is None and rls.scalar("select current_user") == "postgres"


def test_an_insert_limited_to_invitations_is_refused(rls, alice, bob) -> None:
    apply(rls, "trap_membership_invitation")
    _, tables = members(rls)
    attempts = escalation_attempts(rls, tables[rls.relation(MEMBERS).oid], alice, bob)
    assert attempts and all(a.outcome.startswith("refused: 42501") and not a.gains for a in attempts)
    # an invitation for alice to Globex as a member: that one insert is let in, and gains
    rls.execute("insert into private.invitations values (%s, %s, 'member')", [GLOBEX, ALICE])
    attempts = escalation_attempts(rls, tables[rls.relation(MEMBERS).oid], alice, bob)
    assert [a.statement.rsplit("'", 2)[-2] for a in attempts if a.gains] == ["member"]


def test_self_promotion_is_measured_by_what_the_user_can_then_write(rls, alice, bob) -> None:
    apply(rls, "tenant_escalation_promote")
    _, tables = members(rls)
    attempts = escalation_attempts(rls, tables[rls.relation(MEMBERS).oid], alice, bob, exhaustive=True)
    by_statement = {a.statement.split(" set ")[1].split(" where ")[0]: a for a in attempts}
    assert by_statement['"organization_id" = \'' + GLOBEX + "'"].outcome.startswith("refused: 42501")  # role only
    gained = {g.table: (g.before, g.after) for g in by_statement["\"role\" = 'admin'"].gains if g.operation == "delete"}
    assert gained == {"public.conversations": (0, 1200)}
    assert rls.scalar(f"select role from {MEMBERS} where user_id = %s", [ALICE]) == "member"


# -- existence oracles ----------------------------------------------------------------------


def test_only_keys_on_values_users_choose_are_candidates(rls) -> None:
    domains = rls.relation("public.domains")
    chosen = {c.name: chosen_by_user(c) for c in domains.columns}
    assert chosen == {"id": False, "organization_id": True, "hostname": True, "created_at": False}
    assert {k.name: k.columns for k in unique_keys(domains)} == {
        "domains_pkey": ("id",), "domains_hostname_key": ("hostname",),
        "domains_id_organization_id_key": ("id", "organization_id"),
    }
    assert chosen_by_user(rls.relation(MEMBERS).column("role"))  # a constant default: the user may set it


def test_the_example_hostnames_are_no_oracle_and_an_insert_policy_makes_them_one(rls, alice, bob) -> None:
    domains = rls.relation("public.domains")
    (key,) = [k for k in unique_keys(domains) if k.name == "domains_hostname_key"]
    assert existence_oracle(rls, domains, "organization_id", key, alice, bob) is None  # no INSERT privilege
    apply(rls, "existence_oracle")
    domains = rls.relation("public.domains")
    oracle = existence_oracle(rls, domains, "organization_id", key, alice, bob)
    assert oracle is not None and oracle.values["hostname"].startswith("globex-") and oracle.error.startswith("23505")
    assert rls.scalar("select count(*) from public.domains where organization_id = %s", [ACME]) == 3


def test_a_refused_insert_is_no_oracle(rls, alice, bob) -> None:
    apply(rls, "existence_oracle")
    rls.execute("alter policy domains_insert on public.domains with check (false)")
    domains = rls.relation("public.domains")
    (key,) = [k for k in unique_keys(domains) if k.name == "domains_hostname_key"]
    assert existence_oracle(rls, domains, "organization_id", key, alice, bob) is None


# -- cached plans -----------------------------------------------------------------------------


@pytest.mark.parametrize("volatility", ["immutable", "stable"])
def test_a_plan_built_for_one_user_serves_an_immutable_value_to_the_next(rls, alice, bob, volatility) -> None:
    rls.execute(f"create function public.whoami() returns uuid language sql {volatility} as $$ select auth.uid() $$")
    stale = stale_plan(rls, "select public.whoami()::text", alice, bob)
    if volatility == "stable":
        assert stale is None
    else:
        assert stale is not None and (stale.planned, stale.stale, stale.fresh) == (ALICE, ALICE, BOB)
    assert rls.scalar(PREPARED, [PLAN_NAME]) == 0
    assert rls.scalar("select current_setting('plan_cache_mode')") == "auto"


def test_a_failing_proof_deallocates_its_statement(rls, alice, bob) -> None:
    # runs for alice, raises for bob: the error comes after PREPARE, which no rollback undoes
    rls.execute(f"""create function public.only_alice() returns int language plpgsql immutable as $$
        begin if auth.uid() = '{ALICE}' then return 1; end if; raise exception 'not alice'; end $$""")
    assert stale_plan(rls, "select public.only_alice()", alice, bob) is None
    assert rls.scalar(PREPARED, [PLAN_NAME]) == 0
    assert rls.scalar("select 1") == 1  # the test's transaction is usable


def test_the_first_write_that_gains_ends_its_command(rls, alice, bob) -> None:
    apply(rls, "tenant_escalation_join")
    _, tables = members(rls)
    (table,) = tables.values()
    attempts = escalation_attempts(rls, table, alice, bob)
    assert [a.kind for a in attempts] == ["join"] and attempts[0].gains
    assert escalation_attempts(rls, table, alice, bob, commands=["UPDATE"]) == []  # no UPDATE privilege


def test_a_read_that_fails_after_the_write_is_not_blamed_on_the_write(rls, alice, bob) -> None:
    """A policy function of one dependent table raises: that read is left out, the write is
    accepted and the gain on the other tables is still reported."""
    apply(rls, "tenant_escalation_join")
    rls.execute("create function public.boom() returns boolean language plpgsql volatile"
                " as 'begin raise exception ''boom''; end'")
    rls.execute("create policy boom on public.domains as restrictive for select to authenticated using (public.boom())")
    _, tables = members(rls)
    (table,) = tables.values()
    attempts = escalation_attempts(rls, table, alice, bob, exhaustive=True)
    joins = [a for a in attempts if a.kind == "join"]
    assert [a.outcome for a in joins] == ["done"] * 3, [a.outcome for a in joins]
    gains = {(g.table, g.operation): (g.before, g.after) for g in joins[0].gains}
    assert gains["public.conversations", "select"] == (1200, 2132)
    assert ("public.domains", "select") not in gains  # it failed: nothing measured
    assert rls.scalar(f"select count(*) from {MEMBERS} where user_id = %s and organization_id = %s", [ALICE, GLOBEX]) == 0


def test_a_refused_write_is_still_refused_when_a_read_fails(rls, alice, bob) -> None:
    apply(rls, "trap_membership_invitation")
    rls.execute("create function public.boom() returns boolean language plpgsql volatile"
                " as 'begin raise exception ''boom''; end'")
    rls.execute("create policy boom on public.domains as restrictive for select to authenticated using (public.boom())")
    _, tables = members(rls)
    attempts = escalation_attempts(rls, tables[rls.relation(MEMBERS).oid], alice, bob)
    assert attempts and all(a.outcome.startswith("refused: 42501") and not a.gains for a in attempts)


SUPABASE_UPDATE = """
alter table public.organization_members add column nickname text;
update public.organization_members set role = 'member' where user_id = '11111111-1111-1111-1111-111111111111';
grant update on public.organization_members to authenticated;
create policy members_update_own on public.organization_members for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
alter policy conversations_delete on public.conversations using (organization_id in (
  select m.organization_id from public.organization_members m
  where m.user_id = (select auth.uid()) and m.role in ('owner', 'admin')));
"""


def test_the_promotion_fix_refuses_the_promotion_under_a_table_level_grant(rls, rlscheck_session, alice, bob) -> None:
    """Supabase grants table-level UPDATE to authenticated, which a column-level REVOKE leaves
    in place: the fix shown takes the table-level grant back and grants the other columns."""
    from pytest_rlscheck.rules.tenant_escalation import RULE
    from pytest_rlscheck.sweep import Sweep

    for statement in split(SUPABASE_UPDATE):
        rls.execute(statement.text)
    sweep = Sweep(rlscheck_session)
    sweep.prepare(rls.connection)
    (finding,) = [f for c in sweep.checks if c.rule == RULE for f in sweep.run(c, rls).findings]
    assert finding.details["command"] == "UPDATE"
    runnable = [s.text for s in split(finding.fix) if s.text.strip() and not s.text.lstrip().startswith("--")]
    assert runnable[:2] == [
        'REVOKE UPDATE ON "public"."organization_members" FROM "anon", "authenticated"',
        'GRANT UPDATE ("created_at", "nickname") ON "public"."organization_members" TO "authenticated"',
    ], runnable
    # the column-level REVOKE the rule used to suggest leaves the promotion in place
    rls.execute("revoke update (organization_id, role) on public.organization_members from anon, authenticated")
    _, tables = members(rls)
    attempts = escalation_attempts(rls, tables[rls.relation(MEMBERS).oid], alice, bob, exhaustive=True)
    assert any(a.gains for a in attempts if a.kind == "promote")
    for statement in split(finding.fix):
        rls.execute(statement.text)
    _, tables = members(rls)
    attempts = escalation_attempts(rls, tables[rls.relation(MEMBERS).oid], alice, bob, exhaustive=True)
    assert attempts and all(a.outcome.startswith("refused: 42501") and not a.gains for a in attempts), attempts
    with rls.as_user(ALICE):  # what users may change is still theirs
        assert rls.execute(f"update {MEMBERS} set nickname = 'al' where user_id = %s", [ALICE]).rowcount == 1


def _oracle_findings(rls, session):
    from pytest_rlscheck.rules.existence_oracle import RULE
    from pytest_rlscheck.sweep import Sweep

    sweep = Sweep(session)
    sweep.prepare(rls.connection)
    return [f for c in sweep.checks if c.rule == RULE for f in sweep.run(c, rls).findings]


@pytest.mark.parametrize("column", ["invite_token", "api_key", "password_hash"])
def test_a_unique_secret_is_no_oracle(rls, rlscheck_session, alice, bob, column) -> None:
    """Nobody guesses a token: its duplicate key tells nothing. The hostname still is one."""
    apply(rls, "existence_oracle")
    rls.execute(f"alter table public.domains add column {column} text unique")
    rls.execute(f"update public.domains set {column} = md5(id::text)")
    key = rls.scalar("select conname from pg_constraint where conrelid = 'public.domains'::regclass"
                     " and contype = 'u' and conname like %s", [f"%{column}%"])
    domains = rls.relation("public.domains")
    from pytest_rlscheck.existence import UniqueKey
    # measured, the secret's key answers like an oracle ...
    assert existence_oracle(rls, domains, "organization_id", UniqueKey(key, (column,), True), alice, bob) is not None
    # ... but it is not reported: only the hostname is
    found = _oracle_findings(rls, rlscheck_session)
    assert [f.details["constraint"] for f in found] == ["domains_hostname_key"]


SLUGS = """
create table public.org_slugs (slug text primary key, organization_id uuid not null references public.organizations (id));
create table public.slug_visits (id bigint generated always as identity primary key, slug text not null references public.org_slugs (slug));
alter table public.org_slugs enable row level security;
grant select, insert on public.org_slugs to authenticated;
create policy slugs_insert on public.org_slugs for insert to authenticated
  with check (organization_id in (select private.get_user_organization_ids((select auth.uid()))));
create policy slugs_select on public.org_slugs for select to authenticated
  using (organization_id in (select private.get_user_organization_ids((select auth.uid()))));
insert into public.org_slugs values ('acme', 'aaaaaaaa-0000-0000-0000-000000000001'), ('globex', 'bbbbbbbb-0000-0000-0000-000000000002');
"""


def test_a_user_chosen_primary_key_gets_steps_not_a_drop_of_the_primary_key(rls, rlscheck_session) -> None:
    for statement in split(SLUGS):
        rls.execute(statement.text)
    (finding,) = [f for f in _oracle_findings(rls, rlscheck_session) if f.object.display == "public.org_slugs"]
    assert finding.details["constraint"] == "org_slugs_pkey"
    drops = [line for line in finding.fix.splitlines() if "DROP CONSTRAINT" in line]
    assert drops and all(line.startswith("--") for line in drops), drops  # steps to read, not to paste
    assert '"public"."slug_visits" ("slug_visits_slug_fkey")' in finding.fix
    assert 'UNIQUE ("organization_id", "slug")' in finding.fix
    # what the old fix did: refused, the foreign key depends on the primary key
    from pytest_rlscheck.savepoints import rolled_back

    with pytest.raises(psycopg.Error) as refused:
        rolled_back(rls.connection, ['alter table "public"."org_slugs" drop constraint "org_slugs_pkey", '
                                     'add constraint x unique ("organization_id", "slug")'])
    assert refused.value.sqlstate == "2BP01"  # dependent objects still exist


def test_a_moved_membership_is_caught_by_the_other_tenants_rows_it_then_sees(rls, alice, bob) -> None:
    # the move trades alice's own rows for bob's tenant's: as many rows as before, but theirs
    rls.execute("alter policy organization_members_update on public.organization_members "
                "using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()))"
                if rls.scalar("select count(*) from pg_policy where polname = 'organization_members_update'")
                else "create policy organization_members_update on public.organization_members for update to authenticated "
                     "using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()))")
    rls.execute("grant update on public.organization_members to authenticated")
    _, tables = members(rls)
    attempts = escalation_attempts(rls, tables[rls.relation(MEMBERS).oid], alice, bob, commands=("UPDATE",))
    moved = [a for a in attempts if a.kind == "move"]
    assert moved and moved[0].outcome == "done", attempts
    assert any(g.operation == "select theirs" and g.after > g.before == 0 for g in moved[0].gains), moved
    assert "of the other tenant instead of 0" in str(next(g for g in moved[0].gains if g.operation == "select theirs"))
