"""policy-always-true judges what an always-true policy lets whom do to whose rows: the
severity model (README, "Severities") on the catalog PostgreSQL built from real SQL."""

from __future__ import annotations

import pytest

from pytest_rlscheck.catalog import Catalog
from pytest_rlscheck.config import SweepConfig, TableConfig
from pytest_rlscheck.findings import Severity
from pytest_rlscheck.rules import SweepContext
from pytest_rlscheck.rules import policy_always_true as rule

SCHEMA = """
create schema judged;
grant usage on schema judged to anon, authenticated;
create table judged.teams (id uuid primary key default gen_random_uuid(), name text);
create table judged.accounts (id uuid primary key references auth.users, name text);
create table judged.team_members (team_id uuid not null references judged.teams, user_id uuid not null references auth.users,
  primary key (team_id, user_id));
create table judged.notes (id bigint generated always as identity primary key, team_id uuid not null references judged.teams,
  body text);
create table judged.countries (code text primary key, name text);
create table judged.profiles (id bigint generated always as identity primary key, user_id uuid references auth.users, bio text);
grant select, insert, update, delete on all tables in schema judged to authenticated;
grant select on judged.countries to anon;
alter table judged.teams enable row level security;
alter table judged.accounts enable row level security;
alter table judged.team_members enable row level security;
alter table judged.notes enable row level security;
alter table judged.countries enable row level security;
alter table judged.profiles enable row level security;
"""
CONFIG = SweepConfig(tables={"judged.teams": TableConfig(tenant_column="id"), "judged.accounts": TableConfig(tenant_column="id")})


def judged(rls, policies: str, config: SweepConfig = CONFIG) -> dict[str, tuple[Severity, str]]:
    rls.execute(SCHEMA + policies)
    ctx = SweepContext(Catalog.load(rls.connection, schemas=("judged",)), ("judged",), config)
    return {f.details["policy"]: (f.severity, f.message) for f in rule.check(ctx)}


def test_creating_a_team_is_the_sign_up_path_not_a_leak(rls) -> None:
    found = judged(rls, """
        create policy "create a team" on judged.teams for insert to authenticated with check (true);
        create policy "open an account" on judged.accounts for insert to authenticated with check (true);
        create policy "add a country" on judged.countries for insert to authenticated with check (true);
        create policy "note anywhere" on judged.notes for insert to authenticated with check (true);
    """)
    severity, message = found["create a team"]
    assert severity is Severity.INFO and "any signed-in user can create a new tenant of judged.teams" in message
    assert "reaches no existing row" in message and "anon" not in message
    assert found["open an account"][0] is Severity.INFO  # keyed by its user's id: a personal account is a tenant root
    assert found["add a country"][0] is Severity.INFO
    severity, message = found["note anywhere"]
    assert severity is Severity.ERROR and "can insert rows into judged.notes for any tenant" in message


def test_an_update_policy_without_using_reaches_no_row_alone(rls) -> None:
    found = judged(rls, 'create policy "rename" on judged.teams for update to authenticated with check (true);')
    severity, message = found["rename"]
    assert severity is Severity.INFO and "UPDATE 0" in message
    # PostgreSQL agrees: the UPDATE reaches no row, whoever asks
    rls.execute("insert into judged.teams (name) values ('a')")
    with rls.as_role("authenticated"):
        assert rls.execute("update judged.teams set name = 'b' where name = 'a'").rowcount == 0


def test_with_check_true_beside_another_using_lets_rows_move_anywhere(rls) -> None:
    found = judged(rls, """
        create policy "own notes" on judged.notes for update to authenticated
          using (team_id in (select m.team_id from judged.team_members m where m.user_id = (select auth.uid())));
        create policy "anything goes" on judged.notes for update to authenticated with check (true);
    """)
    severity, message = found["anything goes"]
    assert severity is Severity.ERROR and '"own notes" admits to any value: move them into another tenant' in message


def test_everyone_can_view_members_is_a_cross_tenant_read(rls) -> None:
    found = judged(rls, """
        create policy "Everyone can view" on judged.team_members for select to authenticated using (true);
        create policy "public countries" on judged.countries for select to anon, authenticated using (true);
        create policy "public profiles" on judged.profiles for select to authenticated using (true);
    """)
    severity, message = found["Everyone can view"]
    assert severity is Severity.ERROR and "any signed-in user can read every tenant's rows of judged.team_members" in message
    severity, message = found["public countries"]
    assert severity is Severity.INFO and "any signed-in user and anon" in message
    severity, message = found["public profiles"]
    assert severity is Severity.INFO and "every user's rows" in message


@pytest.mark.parametrize("restrictive", [False, True])
def test_a_restrictive_policy_that_limits_the_rows_makes_it_harmless(rls, restrictive: bool) -> None:
    found = judged(rls, """
        create policy "all notes" on judged.notes for select to authenticated using (true);
    """ + ("""
        create policy "my teams only" on judged.notes as restrictive for select to authenticated
          using (team_id in (select m.team_id from judged.team_members m where m.user_id = (select auth.uid())));
    """ if restrictive else ""))
    assert found["all notes"][0] is (Severity.INFO if restrictive else Severity.ERROR)


def test_without_the_privilege_it_is_one_grant_away(rls) -> None:
    found = judged(rls, """
        revoke delete on judged.notes from authenticated;
        create policy "delete any" on judged.notes for delete to authenticated using (true);
    """)
    severity, message = found["delete any"]
    assert severity is Severity.WARN and "one GRANT away" in message


def test_an_open_update_is_latent_while_the_select_policies_limit_the_rows(rls) -> None:
    member = "team_id in (select m.team_id from judged.team_members m where m.user_id = (select auth.uid()))"
    policies = f"""
        create policy "read" on judged.notes for select to authenticated using ({member});
        create policy "edit any" on judged.notes for update to authenticated using (true) with check ({member});
    """
    severity, message = judged(rls, policies)["edit any"]
    assert severity is Severity.WARN and "without a WHERE" in message
    off = SweepConfig(tables=CONFIG.tables, safeupdate=False)  # the API runs UPDATE without a WHERE: a leak
    ctx = SweepContext(Catalog.load(rls.connection, schemas=("judged",)), ("judged",), off)
    assert {f.details["policy"]: f.severity for f in rule.check(ctx)}["edit any"] is Severity.ERROR


def test_anon_is_named_only_where_the_policy_lets_it_in(rls) -> None:
    found = judged(rls, """
        create policy "signed in" on judged.countries for update to anon, authenticated using (auth.uid() is not null);
        create policy "anyone" on judged.notes for delete to public using (true);
    """)
    said = found["signed in"][1].split("): ", 1)[1]  # what it lets whom do, after the policy's own header
    assert "anon" not in said and said.startswith("any signed-in user can change every row")
    assert "anyone, signed in or not" in found["anyone"][1]


def test_rows_that_point_at_a_tenant_are_theirs_and_emails_are_personal(rls) -> None:
    found = judged(rls, """
        create table judged.invitations (id bigint generated always as identity primary key,
          team_ref uuid not null references judged.teams, invitee text not null);
        create table judged.waitlist (id bigint generated always as identity primary key, email text not null);
        grant select on judged.invitations, judged.waitlist to anon, authenticated;
        alter table judged.invitations enable row level security;
        alter table judged.waitlist enable row level security;
        create policy "Everyone can view invitations" on judged.invitations for select using (true);
        create policy "see the list" on judged.waitlist for select to anon using (true);
    """)
    severity, message = found["Everyone can view invitations"]  # team_ref is no usual name: the key is the parent's
    assert severity is Severity.ERROR and "anyone, signed in or not (anon key) can read every tenant's rows" in message
    severity, message = found["see the list"]
    assert severity is Severity.WARN and "with email: personal data" in message
