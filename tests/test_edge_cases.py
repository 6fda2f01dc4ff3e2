"""Schemas and statements real projects have that the worked example does not."""

from __future__ import annotations

import psycopg
import pytest

from conftest import SEED
from pytest_rlscheck.catalog import Catalog
from pytest_rlscheck.errors import RlsAssertionError
from pytest_rlscheck.findings import ObjectRef
from pytest_rlscheck.rules import SweepContext, auth_per_row, tenant_leak
from pytest_rlscheck.sweep import Sweep

ALICE = "11111111-1111-1111-1111-111111111111"
BOB = "22222222-2222-2222-2222-222222222222"
ACME = "aaaaaaaa-0000-0000-0000-000000000001"
GLOBEX = "bbbbbbbb-0000-0000-0000-000000000002"
POLICY = "org_id in (select private.get_user_organization_ids((select auth.uid())))"


def test_a_syntax_error_in_explained_sql_leaves_the_test_usable(rls) -> None:
    with pytest.raises(psycopg.errors.SyntaxError) as info:
        rls.explain("selec 1")
    assert info.value.sqlstate == "42601" and 'syntax error at or near "selec"' in str(info.value)
    assert rls.scalar("select 1") == 1
    assert rls.identity is None and rls.scalar("select current_user") == "postgres"
    # a trailing comment does not swallow what explain runs after the statement; it ran as alice
    plan = rls.explain("select count(*) from conversations -- all of them", as_user=ALICE)
    assert plan.root.node_type == "Aggregate" and plan.root.rows == 1
    scanned = [n for n in plan.root.walk() if n.relation == "public.conversations"]
    assert sum(round(n.rows * n.loops) for n in scanned) == SEED.acme.conversations


def test_nested_identities_do_not_inherit_app_settings(rls) -> None:
    with rls.as_role("authenticated", settings={"app.current_tenant": "X"}):
        with rls.as_user(ALICE):
            assert rls.scalar("select current_setting('app.current_tenant', true)") in ("", None)
        assert rls.scalar("select current_setting('app.current_tenant')") == "X"
        # explain as another identity does not inherit them either: the filter only passes
        # the three rows when the setting is unset (EXPLAIN ANALYZE counts what ran)
        unset = "select 1 from generate_series(1, 3) where coalesce(current_setting('app.current_tenant', true), '') = ''"
        assert rls.explain(unset, as_user=ALICE).root.rows == 3
        assert rls.explain(unset).root.rows == 0  # the role's own identity has it


def test_rows_with_date_and_varchar_keys_can_be_copied(rls) -> None:
    rls.execute("create type plan as enum ('free', 'pro')")
    rls.execute(
        "create table daily (day date, org_id uuid references organizations, code varchar(12), tier plan,"
        " hits int not null default 0 check (hits >= 0), primary key (day, org_id), unique (code))"
    )
    rls.execute(f"insert into daily values ('2024-01-01', '{ACME}', 'ACME-0000001', 'pro', 3)")
    # the copy gets keys of its own (else 23505): accepted, and the CHECK is what rejects
    rls.assert_accepted("daily", {"hits": 5})
    rls.assert_rejected("daily", {"hits": -1}, constraint="daily_hits_check")
    rls.assert_rejected("daily", {"tier": None, "hits": None}, sqlstate="23502")
    # a key given explicitly is kept: the unique constraint is then what refuses the copy
    rls.assert_rejected("daily", {"code": "ACME-0000001"}, constraint="daily_code_key", sqlstate="23505")
    with pytest.raises(RlsAssertionError, match=r"rejected .* with 23505 unique_violation"):
        rls.assert_accepted("daily", {"code": "ACME-0000001"})
    # and every attempt was rolled back
    assert rls.fetchall("select day::text, code, tier::text, hits from daily") == [("2024-01-01", "ACME-0000001", "pro", 3)]


def test_an_operation_that_cannot_be_tried_is_unproven_not_a_leak(rls) -> None:
    rls.execute("create table notes (id bigint generated always as identity primary key, org_id uuid not null, body text)")
    rls.execute("alter table notes enable row level security")
    for command in ("select", "insert", "update", "delete"):
        clause = "with check" if command == "insert" else "using"
        rls.execute(f"create policy notes_{command} on notes for {command} to authenticated {clause} ({POLICY})")
    rls.execute(f"insert into notes (org_id, body) values ('{GLOBEX}', 'theirs')")  # none of alice's
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_isolated("notes", user=rls.user(ALICE, tenant=ACME), other=rls.user(BOB, tenant=GLOBEX),
                            tenant_column="org_id")
    message = str(info.value)
    assert "could not be proven for 1 of 10 operations" in message
    assert "??   move" in message and "LEAK" not in message


def test_identity_primary_keys_are_measured_for_update(rls) -> None:
    rls.execute("create table notes (id bigint generated always as identity primary key, org_id uuid not null)")
    rls.execute("alter table notes enable row level security")
    rls.execute(f"create policy notes_all on notes for all to authenticated using ({POLICY})")
    rls.execute(f"insert into notes (org_id) values ('{ACME}'), ('{GLOBEX}')")
    rel = rls.relation("notes")
    findings, measured = auth_per_row.measure(rls, rel, rls.user(ALICE), auth_per_row.functions(rls))
    assert findings == []
    # update is measured (an identity key cannot be SET): once for USING, once for WITH CHECK
    assert measured == {"rows": 2, "auth.uid": {"select": 1, "update": 2, "delete": 1}}


def test_column_grants_count_as_reachable(rls) -> None:
    rls.execute("create table profiles (id uuid primary key, full_name text)")
    rls.execute("revoke all on profiles from anon, authenticated")
    rls.execute("grant update (full_name) on profiles to authenticated")
    rel = Catalog.load(rls.connection, schemas=["public"]).relation("public.profiles")
    assert rel.granted("authenticated", "UPDATE")
    assert not rel.granted("authenticated", "SELECT")


def test_sweep_copes_with_revoked_select_and_quoted_names(rls, rlscheck_session) -> None:
    rls.execute('create table secrets (id bigint generated always as identity primary key, organization_id uuid not null references organizations, v text)')
    rls.execute("create index on secrets (organization_id)")
    rls.execute("alter table secrets enable row level security")
    rls.execute("create policy s on secrets for all to authenticated using (organization_id in (select private.get_user_organization_ids((select auth.uid()))))")
    rls.execute(f"insert into secrets (organization_id, v) values ('{ACME}', 'a'), ('{GLOBEX}', 'b')")
    rls.execute("revoke all on secrets from anon, authenticated")
    rls.execute('create view public."OrgConversations" with (security_invoker = true) as select id, organization_id from conversations')
    rls.execute('create function public."myConversations"() returns setof conversations language sql stable as \'select * from conversations\'')
    sweep = Sweep(rlscheck_session)
    sweep.prepare(rls.connection)
    results = {(r.check.rule, r.check.object.display): r for r in sweep.run_all(rls)}
    assert results[("tenant-leak", "public.secrets")].findings == ()
    every = "select, insert, update, delete, move, upsert"
    assert results[("tenant-leak", "public.secrets")].facts["isolation"] == f"verified ({every} as alice/bob)"
    # the view and the function: read as the principals, and as anon (granted to it by default)
    assert results[("tenant-leak", "public.OrgConversations")].facts["isolation"] == "verified (select as alice/bob and anon)"
    assert results[("tenant-leak", 'public.myConversations()')].facts["isolation"] == "verified (select as alice/bob and anon)"
    # the function is SECURITY INVOKER: no definer finding either
    assert not [f for r in results.values() for f in r.findings]


def test_an_ignore_names_a_function_by_its_name_even_with_a_parenthesis_in_it(rls, rlscheck_session) -> None:
    rls.execute('create function public."rate(x)"(n int) returns int language sql security definer as \'select n\'')
    sweep = Sweep(rlscheck_session)
    sweep.ignores = {"definer-search-path:public.rate(x)": "every overload reviewed"}
    sweep.prepare(rls.connection)
    assert sweep.unknown_ignores() == {}
    results = {(r.check.rule, r.check.object.display): r for r in sweep.run_all(rls)}
    result = results[("definer-search-path", "public.rate(x)(n integer)")]
    assert result.check.object == ObjectRef("function", "public", "rate(x)", "n integer")
    assert result.findings == () and [reason for _, reason in result.ignored] == ["every overload reviewed"]


def test_tenant_leak_reports_leaks_to_several_users_once(rls) -> None:
    rls.execute("create view leaky as select id, organization_id from conversations")
    ctx = SweepContext(Catalog.load(rls.connection, schemas=["public"]), ("public",))
    principals = [rls.user(ALICE, tenant=ACME), rls.user(BOB, tenant=GLOBEX)]
    findings, status = tenant_leak.check_view(rls, ctx, ctx.catalog.relation("public.leaky"), principals)
    assert status == "LEAK" and len(findings) == 1
    assert "(and for 1 more user(s))" in findings[0].message
    assert findings[0].object == ObjectRef("view", "public", "leaky") and str(findings[0].object) == "public.leaky"
    assert findings[0].message.startswith("public.leaky leaks rows of other tenants: acting as user 1111")
    assert findings[0].fix.startswith("-- Cause: public.leaky is a view that runs with its owner's rights")
    assert findings[0].fix.endswith('ALTER VIEW "public"."leaky" SET (security_invoker = true);  -- PostgreSQL 15+')


def test_a_move_blocked_by_a_trigger_on_another_key_is_retried_with_the_tenant_alone(rls, alice, bob) -> None:
    rls.execute("alter table conversations add column assigned_to uuid references auth.users (id)")
    rls.execute("create index on conversations (assigned_to)")
    rls.execute("update conversations set assigned_to = %s where organization_id = %s", [BOB, GLOBEX])
    rls.execute(
        "create function public.assignee_is_fixed() returns trigger language plpgsql as $$ begin"
        " if new.assigned_to is distinct from old.assigned_to then raise exception 'assigned_to is immutable'; end if;"
        " return new; end $$"
    )
    rls.execute("create trigger assignee_is_fixed before update on conversations for each row"
                " execute function public.assignee_is_fixed()")
    rls.assert_isolated("conversations", user=alice, other=bob, ops=("move",))
    # the policies that pin the tenant are what refuse; without them the move is a leak
    rls.execute("alter policy conversations_update on conversations with check (true)")
    rls.execute("alter policy conversations_select on conversations using (true)")
    with pytest.raises(RlsAssertionError, match=r"LEAK +move"):
        rls.assert_isolated("conversations", user=alice, other=bob, ops=("move",))


def test_a_per_user_table_is_keyed_by_the_column_its_policies_compare_with_auth_uid(rls, alice, bob) -> None:
    rls.execute(
        """
        create table public.notes (id bigint generated always as identity primary key,
          author uuid not null default auth.uid() references auth.users (id), body text);
        alter table public.notes enable row level security;
        create policy notes_own on public.notes for all to authenticated
          using (author = (select auth.uid())) with check (author = (select auth.uid()));
        insert into public.notes (author, body) select id, email from auth.users;
        """
    )
    rls.assert_isolated("notes", user=alice, other=bob)
    rls.execute("create policy notes_read on public.notes for select to authenticated using (true)")
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_isolated("notes", user=alice, other=bob, ops=("select",))
    message = str(info.value)
    assert f"reached the rows of {BOB} (owned by {BOB}, by column author (the owning user))" in message
    assert "the user sees 1 of the other tenant's 1 rows" in message
    assert "limits column author (the owning user) to the user, e.g. author = (SELECT auth.uid())" in message


def test_a_tenant_sql_that_only_names_a_column_is_that_column(rls) -> None:
    from pytest_rlscheck.isolation import TenantKey, tenant_key

    rel = rls.relation("messages")
    assert tenant_key(rel, None, "(organization_id)") == TenantKey("organization_id")
    assert tenant_key(rel, None, ' "organization_id" ') == TenantKey("organization_id")
    parent = "(select c.organization_id from conversations c where c.id = conversation_id)"
    assert tenant_key(rel, None, parent) == TenantKey(None, parent)
    assert tenant_key(rel, None, "(no_such_column)") == TenantKey(None, "(no_such_column)")


def test_a_table_with_two_user_columns_has_no_single_owner(rls) -> None:
    from pytest_rlscheck.isolation import owner_column

    rls.execute(
        """
        create table public.direct_messages (id bigint generated always as identity primary key,
          sender_id uuid not null references auth.users (id), recipient_id uuid not null references auth.users (id),
          body text);
        alter table public.direct_messages enable row level security;
        create policy dm_read on public.direct_messages for select to authenticated
          using ((select auth.uid()) = sender_id or (select auth.uid()) = recipient_id);
        create policy dm_send on public.direct_messages for insert to authenticated
          with check (sender_id = (select auth.uid()));
        """
    )
    assert owner_column(rls.relation("direct_messages")) is None  # a message is both users'
    rls.execute("drop policy dm_read on public.direct_messages")
    assert owner_column(rls.relation("direct_messages")) == "sender_id"


def test_foreign_rows_of_a_per_user_table_are_other_users_rows(rls, alice) -> None:
    rls.execute(
        """
        create table public.notes (id bigint generated always as identity primary key,
          user_id uuid not null references auth.users (id), body text);
        alter table public.notes enable row level security;
        create policy notes_own on public.notes for all to authenticated
          using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
        insert into public.notes (user_id, body) select id, email from auth.users;
        """
    )
    rls.assert_no_foreign_rows("notes", user=alice)  # alice's own note is hers, not a foreign tenant's
    rls.execute("alter policy notes_own on public.notes using (true)")
    with pytest.raises(RlsAssertionError, match="leaks rows of other tenants"):
        rls.assert_no_foreign_rows("notes", user=alice)


def test_a_literal_list_in_a_policy_is_not_a_tenant_filter(rls) -> None:
    from pytest_rlscheck.rules.unindexed_policy_column import policy_columns

    rls.execute("alter table conversations add column visibility text not null default 'team'")
    rls.execute(
        "create policy published on conversations for select to authenticated using (visibility in ('public', 'listed'))"
    )
    columns = policy_columns(rls.relation("conversations"), scanning_only=False)
    assert "organization_id" in columns and "visibility" not in columns
