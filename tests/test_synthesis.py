"""Zero-config principals and rows (synthesis.py): made where the project has none, in the
sweep's own database, with the schema's constraints satisfied, and said in the summary."""

from __future__ import annotations

import json

import pytest

from conftest import example_project
from pytest_rlscheck.catalog import Catalog
from pytest_rlscheck.config import SweepConfig
from pytest_rlscheck.sweep import Sweep
from pytest_rlscheck.synthesis import summary_lines, synthesize
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
