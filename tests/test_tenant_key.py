"""The tenant key from the policies first (:func:`pytest_rlscheck.tenancy.find_tenant_key`):
the column they compare with the caller's user id, or test against the caller's tenants, or
pass to a membership helper, beats a usual tenant name that merely exists; names break ties
and decide when the policies say nothing. Tables made in the test's transaction (real
PostgreSQL); the sweep runs with the example's two configured principals."""

from __future__ import annotations

from dataclasses import replace

from sweep_variants import findings_after
from pytest_rlscheck.config import SweepConfig
from pytest_rlscheck.sweep import Sweep
from pytest_rlscheck.tenancy import PolicyKeys, find_tenant_key

MEMBER_OF = "(select private.get_user_organization_ids((select auth.uid())))"

#: The project of the issue: a workspace_id column, policies about the owning user.
NOTES = """
    create table public.notes (
      id bigint generated always as identity primary key,
      workspace_id uuid,
      user_id uuid not null default auth.uid() references auth.users (id),
      body text not null default ''
    );
    create index on public.notes (user_id);
    alter table public.notes enable row level security;
    grant select, insert, update, delete on public.notes to authenticated;
    create policy notes_select on public.notes for select to authenticated using (user_id = (select auth.uid()));
    create policy notes_insert on public.notes for insert to authenticated with check (user_id = (select auth.uid()));
    create policy notes_update on public.notes for update to authenticated
      using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
    create policy notes_delete on public.notes for delete to authenticated using (user_id = (select auth.uid()));
"""


def test_the_user_the_policies_compare_beats_a_workspace_id_that_merely_exists(rls) -> None:
    rls.execute(NOTES)
    key = find_tenant_key(rls.relation("public.notes"))
    assert (key.column, key.per_user) == ("user_id", True)


def test_the_projects_own_tenant_column_is_configuration_not_a_guess(rls) -> None:
    rls.execute(NOTES)
    key = find_tenant_key(rls.relation("public.notes"), replace(SweepConfig(), tenant_column="workspace_id"))
    assert (key.column, key.per_user) == ("workspace_id", False)


def _isolation(rls, rlscheck_session, sql: str, table: str) -> tuple[set[tuple[str, str]], str]:
    sweep = Sweep(rlscheck_session)
    found = findings_after(rls, sweep, sql)
    (result,) = [sweep.run(c, rls) for c in sweep.checks if c.rule == "tenant-leak" and c.object.display == table]
    return found, result.facts["isolation"]


def test_isolation_of_a_per_user_table_with_a_workspace_id_is_checked_with_two_principals(rls, rlscheck_session) -> None:
    found, isolation = _isolation(rls, rlscheck_session, NOTES, "public.notes")
    assert isolation.startswith("verified (") and "as alice/bob" in isolation, isolation
    assert not {f for f in found if f[1] == "public.notes"}, found


def test_and_a_leak_of_it_is_found(rls, rlscheck_session) -> None:
    # a note can be written in another user's name
    leaky = NOTES.replace("for insert to authenticated with check (user_id = (select auth.uid()))",
                          "for insert to authenticated with check (auth.uid() is not null)")
    assert leaky != NOTES
    found, isolation = _isolation(rls, rlscheck_session, leaky, "public.notes")
    assert isolation.startswith("LEAK"), (isolation, found)
    assert ("tenant-leak", "public.notes") in found


def test_a_policy_on_both_takes_the_workspace_as_the_tenant(rls) -> None:
    rls.execute(f"""
        create table public.tasks (id bigint primary key, workspace_id uuid, user_id uuid);
        alter table public.tasks enable row level security;
        create policy tasks_select on public.tasks for select to authenticated
          using (workspace_id in {MEMBER_OF} and user_id = (select auth.uid()));
    """)
    rel = rls.relation("public.tasks")
    assert PolicyKeys.of(rel) == PolicyKeys({"workspace_id": 2}, {"user_id": 2})
    key = find_tenant_key(rel)
    assert (key.column, key.per_user) == ("workspace_id", False)  # the user is an owner within it


def test_a_column_passed_to_a_membership_helper_is_the_key(rls) -> None:
    rls.execute("""
        create function private.is_gym_member(_gym uuid) returns boolean language sql stable security definer
          set search_path = '' as $$ select _gym in (select private.get_user_organization_ids((select auth.uid()))) $$;
        create table public.visits (id bigint primary key, gym_id uuid, account_id uuid, user_id uuid);
        alter table public.visits enable row level security;
        create policy visits_select on public.visits for select to authenticated using ((select private.is_gym_member(gym_id)));
        create policy visits_own on public.visits for update to authenticated using (user_id = (select auth.uid()));
    """)
    key = find_tenant_key(rls.relation("public.visits"))
    assert (key.column, key.per_user) == ("gym_id", False)  # not account_id, a usual name the policies ignore


def test_the_select_policies_weigh_most_when_the_policies_disagree(rls) -> None:
    rls.execute(f"""
        create table public.drafts (id bigint primary key, workspace_id uuid, author_id uuid);
        alter table public.drafts enable row level security;
        create policy drafts_read on public.drafts for select to authenticated using (author_id = (select auth.uid()));
        create policy drafts_add on public.drafts for insert to authenticated with check (workspace_id in {MEMBER_OF});
    """)
    key = find_tenant_key(rls.relation("public.drafts"))
    assert (key.column, key.per_user) == ("author_id", True)


def test_names_break_a_tie_between_policy_keys_and_decide_when_the_policies_say_nothing(rls) -> None:
    rls.execute(f"""
        create table public.shared (id bigint primary key, team_id uuid, account_id uuid, partner uuid);
        alter table public.shared enable row level security;
        create policy shared_read on public.shared for select to authenticated
          using (team_id in {MEMBER_OF} or account_id in {MEMBER_OF});
        create table public.odd (id bigint primary key, left_org uuid, right_org uuid);
        alter table public.odd enable row level security;
        create policy odd_read on public.odd for select to authenticated
          using (left_org in {MEMBER_OF} or right_org in {MEMBER_OF});
        create table public.plain (id bigint primary key, workspace_id uuid);
        alter table public.plain enable row level security;
        create policy plain_read on public.plain for select to authenticated using (exists (
          select 1 from public.organization_members m where m.organization_id = plain.workspace_id
            and m.user_id = (select auth.uid())));
    """)
    assert find_tenant_key(rls.relation("public.shared")).column == "account_id"  # first of the usual names
    assert find_tenant_key(rls.relation("public.odd")) is None  # two keys, neither a usual name
    assert find_tenant_key(rls.relation("public.plain")).column == "workspace_id"  # an EXISTS: names decide


def test_a_row_id_in_a_set_is_no_tenant_and_a_membership_table_is_its_tenants(rls) -> None:
    rls.execute("""
        create table public.docs (id uuid primary key, workspace_id uuid);
        alter table public.docs enable row level security;
        create policy docs_read on public.docs for select to authenticated
          using (id in (select s.organization_id from public.organization_members s where s.user_id = (select auth.uid())));
    """)
    assert find_tenant_key(rls.relation("public.docs")).column == "workspace_id"
    # each member sees their memberships (user_id = auth.uid()), but a membership is its organization's
    key = find_tenant_key(rls.relation("public.organization_members"))
    assert (key.column, key.per_user) == ("organization_id", False)


def test_a_helper_over_a_non_id_column_is_no_tenant_key(rls) -> None:
    rls.execute("""
        create function public.is_shown(title text) returns boolean language sql stable as $$ select title <> '' $$;
        create table public.posts (id bigint primary key, title text not null, author_id uuid not null);
        alter table public.posts enable row level security;
        create policy shown on public.posts for select to authenticated
          using (public.is_shown(title) and author_id = (select auth.uid()));
    """)
    key = find_tenant_key(rls.relation("posts"))
    assert key is not None and key.column == "author_id" and key.per_user
