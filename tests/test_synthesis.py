"""Zero-config principals and rows (synthesis.py): made where the project has none, in the
sweep's own database, with the schema's constraints satisfied, and said in the summary."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from conftest import example_project
from pytest_rlscheck.catalog import Catalog
from pytest_rlscheck.config import SweepConfig, TableConfig
from pytest_rlscheck.impersonation import Principal
from pytest_rlscheck.sweep import Sweep
from pytest_rlscheck.synthesis import plan, summary_lines, synthesize
from pytest_rlscheck.tenancy import find_tenant_key
from sweep_variants import findings_after, variants

PROJECTS_SQL = """
create type public.project_kind as enum ('internal', 'client');
create table public.projects (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id),
  owner_id uuid not null references auth.users (id) default auth.uid(),
  name text not null check (length(name) between 3 and 40),
  status text not null check (status in ('active', 'archived')),
  kind public.project_kind not null,
  slug text not null unique,
  budget integer not null check (budget > 100),
  code varchar(6) not null check (code ~ '^[a-z0-9_]+$'),
  settings jsonb not null check (settings ? 'color' and settings ->> 'color' in ('red', 'blue'))
);
alter table public.projects enable row level security;
grant select, insert, update, delete on public.projects to authenticated;
create policy projects_all on public.projects for all to authenticated
  using (organization_id in (select private.get_user_organization_ids((select auth.uid()))))
  with check (organization_id in (select private.get_user_organization_ids((select auth.uid()))));
create index on public.projects (organization_id);
"""


def _sweep_with(rls, rlscheck_session, sql_text: str) -> Sweep:
    sweep = Sweep(rlscheck_session)
    findings_after(rls, sweep, sql_text)
    return sweep


def test_rows_are_made_for_the_configured_tenants_where_the_seed_has_none(rls, rlscheck_session) -> None:
    sweep = _sweep_with(rls, rlscheck_session, PROJECTS_SQL)
    made = sweep.synthesis
    assert made.synthesized_users == ()  # alice and bob are configured
    assert dict(made.rows) == {"public.projects": 2}, made.skipped
    rows = rls.fetchall(
        "select organization_id::text, owner_id::text, status, kind::text, budget, settings from public.projects order by 1"
    )
    tenants = {str(p.tenant): str(p.sub) for p in made.principals}
    assert {r[0] for r in rows} == set(tenants)
    for org, owner, status, kind, budget, settings in rows:
        assert owner == tenants[org]  # the user of that tenant, as a foreign key to auth.users
        assert status in ("active", "archived") and kind in ("internal", "client") and budget > 100
        assert settings["color"] in ("red", "blue")
    isolation = {r.check.object.display: r.facts.get("isolation") for r in sweep.run_all(rls) if r.check.rule == "tenant-leak"}
    assert isolation["public.projects"].startswith("verified"), isolation


def test_a_table_no_row_can_be_made_for_says_why(rls, rlscheck_session) -> None:
    sweep = _sweep_with(
        rls,
        rlscheck_session,
        PROJECTS_SQL
        + """
        create function public.refuse() returns trigger language plpgsql as $$
        begin raise exception 'projects are created by the backend'; end $$;
        create trigger refuse before insert on public.projects for each row execute function public.refuse();
        """,
    )
    why = sweep.synthesis.skipped["public.projects"]
    assert why.startswith("P0001: projects are created by the backend"), why
    summary = "\n".join(summary_lines(sweep.synthesis.to_dict()))
    assert "no rows synthesized for public.projects: P0001: projects are created by the backend" in summary


def test_principals_are_synthesized_when_none_are_configured(rls) -> None:
    conn = rls.connection
    catalog = Catalog.load(conn, schemas=["public"])
    with conn.transaction(force_rollback=True):
        first = synthesize(conn, catalog, SweepConfig(), [], [])
        users = rls.fetchall("select id::text, email from auth.users where email like '%%@rlscheck.test' order by email")
        members = rls.fetchall(
            "select user_id::text, organization_id::text, role from public.organization_members "
            "where user_id = any(%s::uuid[]) order by role",
            [[p.sub for p in first.principals]],
        )
    with conn.transaction(force_rollback=True):
        second = synthesize(conn, catalog, SweepConfig(), [], [])
    assert first.synthesized_users == ("alice", "bob")
    assert [e for _, e in users] == ["alice@rlscheck.test", "bob@rlscheck.test"]
    assert first.tenant_root == "public.organizations"
    alice, bob = first.principals
    assert alice.tenant and bob.tenant and alice.tenant != bob.tenant
    # memberships join each user to their own tenant, with the most privileged role the CHECK allows
    assert sorted((u, o, r) for u, o, r in members) == sorted([(alice.sub, alice.tenant, "owner"), (bob.sub, bob.tenant, "owner")])
    assert set(first.rows) == {"public.organizations", "public.organization_members", "public.domains",
                               "public.conversations", "public.messages"}
    # deterministic: every xdist worker makes the same principals and tenants
    assert second.principals == first.principals and second.rows == first.rows


def test_the_worked_example_needs_nothing_synthesized(rls, rlscheck_session) -> None:
    sweep = _sweep_with(rls, rlscheck_session, "")
    assert not sweep.synthesis.made_anything


NO_SEED_TEST = """
def test_own_tests_do_not_see_synthesized_rows(rls):
    assert rls.scalar("select count(*) from auth.users") == 0
    assert rls.scalar("select count(*) from public.organizations") == 0
"""


def _no_seed_project(pytester: pytest.Pytester, extra_sql: str = "") -> None:
    example_project(pytester, extra_sql)
    (pytester.path / "supabase" / "seed.sql").unlink()
    (pytester.path / "pyproject.toml").write_text("[tool.rlscheck]\n")  # no principals, no table config


def test_a_schema_without_seed_or_config_gets_a_measured_verdict(pytester: pytest.Pytester) -> None:
    _no_seed_project(pytester)
    pytester.makepyfile(test_own=NO_SEED_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rlscheck", "--rlscheck-report=out.json",
                                           "--rlscheck-report=out.md", timeout=300)
    output = result.stdout.str()
    assert result.ret == 0, output
    data = json.loads((pytester.path / "out.json").read_text())
    isolation = {t["table"]: t["isolation"] for t in data["tables"]}
    assert len(isolation) == 5 and all(v.startswith("verified") for v in isolation.values()), isolation
    assert data["synthesized"]["tenant_root"] == "public.organizations"
    assert "synthesized rows (the seed had none for a principal's tenant): 10 in 5 table(s)" in output
    assert "- Synthesized principals (none configured): alice" in (pytester.path / "out.md").read_text()


def test_a_leak_is_found_without_seed_or_config_also_under_xdist(pytester: pytest.Pytester) -> None:
    variant = next(v for v in variants() if v.name == "tenant_leak")
    _no_seed_project(pytester, variant.sql)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rlscheck", "-m", "rlscheck", "-n", "2",
                                           "--rlscheck-report=out.json", timeout=300)
    data = json.loads((pytester.path / "out.json").read_text())
    errors = {(f["rule"], f["object"]) for f in data["findings"] if f["severity"] == "error"}
    assert errors == set(variant.expected), (errors, result.stdout.str())


def _tenant_schema(rls, schema: str, root_key: str, member_role: str, extra: str = "") -> None:
    """A root (``orgs``), memberships, and a tenant table, in a schema of their own."""
    rls.execute(f"""
        create schema {schema};
        create table {schema}.orgs (id {root_key} primary key, name text not null, owner_id uuid references auth.users);
        create table {schema}.members (
          org_id {root_key.split()[0]} not null references {schema}.orgs (id),
          user_id uuid not null references auth.users (id),
          role {member_role},
          primary key (org_id, user_id));
        create table {schema}.items (id bigint generated always as identity primary key,
          org_id {root_key.split()[0]} not null references {schema}.orgs (id), title text not null);
        alter table {schema}.orgs enable row level security;
        alter table {schema}.members enable row level security;
        alter table {schema}.items enable row level security;
        grant usage on schema {schema} to authenticated;
        grant select, insert, update, delete on all tables in schema {schema} to authenticated;
        create policy orgs_owner on {schema}.orgs for all to authenticated using (owner_id = (select auth.uid()));
        create policy members_own on {schema}.members for select to authenticated using (user_id = (select auth.uid()));
        create policy items_members on {schema}.items for all to authenticated using (
          org_id in (select m.org_id from {schema}.members m where m.user_id = (select auth.uid()))) {extra};
    """)


def _synthesized(rls, schema: str):
    conn = rls.connection
    catalog = Catalog.load(conn, schemas=[schema])
    made = synthesize(conn, catalog, SweepConfig(), [], [])
    members = rls.fetchall(f"select user_id::text, org_id::text, role::text from {schema}.members order by 1")
    items = rls.fetchall(f"select org_id::text from {schema}.items order by 1")
    return made, members, items


def test_a_tenant_made_by_sign_up_is_the_principals_tenant(rls) -> None:
    # a trigger on auth.users gives each new user a personal organization and its membership
    _tenant_schema(rls, "s_signup", "uuid default gen_random_uuid()", "text not null default 'member'")
    rls.execute("""
        create function s_signup.on_signup() returns trigger language plpgsql security definer set search_path = '' as $$
        begin
          insert into s_signup.orgs (id, name, owner_id) values (new.id, 'personal', new.id);
          insert into s_signup.members (org_id, user_id, role) values (new.id, new.id, 'owner');
          return new;
        end $$;
        create trigger on_signup after insert on auth.users for each row execute function s_signup.on_signup();
    """)
    made, members, items = _synthesized(rls, "s_signup")
    alice, bob = made.principals
    assert (alice.tenant, bob.tenant) == (alice.sub, bob.sub)  # the personal organizations
    assert "s_signup.orgs" not in made.rows and "s_signup.members" not in made.rows, made.rows
    assert sorted(members) == sorted([(alice.sub, alice.sub, "owner"), (bob.sub, bob.sub, "owner")])
    assert sorted(o for (o,) in items) == sorted([alice.sub, bob.sub]) and not made.skipped, made.skipped


def test_a_root_keyed_by_identity_takes_the_key_the_database_gave(rls) -> None:
    _tenant_schema(rls, "s_ident", "bigint generated always as identity", "text not null default 'member'")
    made, members, items = _synthesized(rls, "s_ident")
    alice, bob = made.principals
    ids = {o for (o,) in rls.fetchall("select id::text from s_ident.orgs")}
    assert {alice.tenant, bob.tenant} == ids and len(ids) == 2
    assert sorted((u, o) for u, o, _ in members) == sorted([(alice.sub, alice.tenant), (bob.sub, bob.tenant)])
    assert sorted(o for (o,) in items) == sorted(ids), made.skipped


def test_a_membership_gets_the_role_the_policies_ask_for_over_its_default(rls) -> None:
    _tenant_schema(
        rls, "s_role", "uuid default gen_random_uuid()", "text not null default 'member' check (role in ('owner', 'admin', 'member'))",
    )
    rls.execute("""
        create table s_role.billing (org_id uuid primary key references s_role.orgs (id), plan text not null);
        alter table s_role.billing enable row level security;
        grant select, update on s_role.billing to authenticated;
        create policy billing_admins on s_role.billing for all to authenticated using (exists (
          select 1 from s_role.members m where m.org_id = billing.org_id and m.user_id = (select auth.uid())
          and m.role = 'admin'));
    """)
    made, members, _ = _synthesized(rls, "s_role")
    assert {r for _, _, r in members} == {"admin"}, members
    assert made.rows["s_role.billing"] == 2


def test_a_table_that_needs_an_unmade_parent_is_said_once_with_the_cause() -> None:
    lines = summary_lines({"skipped": {
        "public.accounts": "P0001: accounts are made by the backend",
        "public.goals": "no row of public.accounts for t1 to point account_id at",
        "public.contributions": "no row of public.goals for t1 to point goal_id at",
    }})
    assert lines == ["no rows synthesized for public.accounts: P0001: accounts are made by the backend (nor for 2 table(s) "
                     "that need its rows: public.contributions, public.goals)"]


SIGN_UP_WITH_RANDOM_TENANT = """
create function private.on_signup() returns trigger language plpgsql security definer set search_path = '' as $$
declare org uuid := gen_random_uuid();
begin
  insert into public.organizations (id, name) values (org, 'personal');
  insert into public.organization_members (organization_id, user_id, role) values (org, new.id, 'owner');
  return new;
end $$;
create trigger on_signup after insert on auth.users for each row execute function private.on_signup();
"""


def test_tenants_a_sign_up_trigger_makes_at_random_are_the_ones_measured(pytester: pytest.Pytester) -> None:
    # the dry run and the sweep's own clone get different organization ids: the clone's count
    _no_seed_project(pytester, SIGN_UP_WITH_RANDOM_TENANT)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rlscheck", "-m", "rlscheck",
                                           "--rlscheck-report=out.json", timeout=300)
    data = json.loads((pytester.path / "out.json").read_text())
    isolation = {t["table"]: t["isolation"] for t in data["tables"]}
    assert all(v.startswith("verified") for v in isolation.values()), (isolation, result.stdout.str())
    made = data["synthesized"]
    assert "public.organizations" not in made["rows"] and "public.organization_members" not in made["rows"], made
    assert made["rows"]["public.conversations"] == 2


def test_of_several_usual_tenant_names_the_one_the_policies_filter_on_is_the_key(rls) -> None:
    rls.execute("""
        create table public.ledger (id uuid primary key, account_id uuid, workspace_id uuid);
        alter table public.ledger enable row level security;
        create policy ledger_members on public.ledger for select to authenticated using (
          workspace_id in (select m.organization_id from public.organization_members m where m.user_id = (select auth.uid())));
    """)
    assert find_tenant_key(rls.relation("public.ledger")).column == "workspace_id"


def test_a_sign_up_the_schema_refuses_is_said_not_raised(rls) -> None:
    rls.execute("""
        create function private.need_a_name() returns trigger language plpgsql as $$
        begin
          if new.raw_user_meta_data ->> 'full_name' is null then raise exception 'a full name is required'; end if;
          return new;
        end $$;
        create trigger need_a_name before insert on auth.users for each row execute function private.need_a_name();
    """)
    made = synthesize(rls.connection, Catalog.load(rls.connection, schemas=["public"]), SweepConfig(), [], [])
    assert made.failed is not None and "a full name is required" in made.failed, made
    assert "signing up alice@rlscheck.test failed" in made.failed  # as Supabase Auth signs users up
    assert "(PL/pgSQL function private.need_a_name() line 3 at RAISE)" in made.failed  # the trigger at fault
    assert summary_lines(made.to_dict())[0].startswith("could not synthesize principals and rows: P0001: signing up")
    assert rls.scalar("select count(*) from auth.users where email like '%%@rlscheck.test'") == 0  # nothing half made


def test_a_tenant_sql_that_does_not_run_is_said_by_the_plan(rls) -> None:
    config = replace(SweepConfig(), tables={"public.messages": TableConfig(tenant_sql="(select nope from nowhere)")})
    configured = [Principal("11111111-1111-1111-1111-111111111111", "aaaaaaaa-0000-0000-0000-000000000001"),
                  Principal("22222222-2222-2222-2222-222222222222", "bbbbbbbb-0000-0000-0000-000000000002")]
    made, needed = plan(rls.connection, Catalog.load(rls.connection, schemas=["public"]), config, configured, ["alice", "bob"])
    assert not needed and made.failed is not None and "nowhere" in made.failed, made
    assert rls.scalar("select 1") == 1  # the test's transaction goes on
