"""Each assertion fails, with the right message, on a deliberately broken schema.

The breakage is made inside the test's transaction, so it is gone after each test."""

from __future__ import annotations

import re

import pytest

from conftest import ACME, ALICE, BOB, GLOBEX, SEED

from pytest_rlscheck import assertions
from pytest_rlscheck.errors import RlsAssertionError



def test_rls_off_is_reported_with_the_fix(rls) -> None:
    rls.execute("alter table conversations disable row level security")
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_rls_enabled("conversations")
    message = str(info.value)
    assert "public.conversations: row level security is off" in message
    assert "anon and authenticated can read it" in message
    assert 'ALTER TABLE "public"."conversations" ENABLE ROW LEVEL SECURITY;' in message


def test_forced_rls_is_checked(rls) -> None:
    with pytest.raises(RlsAssertionError, match="on but not forced .*NO FORCE|FORCE ROW LEVEL SECURITY"):
        rls.assert_rls_enabled("conversations", forced=True)
    rls.execute("alter table conversations force row level security")
    rls.assert_rls_enabled("conversations", forced=True)


def test_missing_policy_lists_what_is_there_and_what_to_add(rls) -> None:
    rls.execute("drop policy messages_delete on messages")
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_policies("messages", count=4, commands={"SELECT", "INSERT", "UPDATE", "DELETE"})
    message = str(info.value)
    assert message.startswith("public.messages: expected 4 policies, found 3; no policy covers DELETE.")
    assert '- "messages_insert" FOR INSERT TO authenticated (permissive) WITH CHECK (' in message
    assert 'CREATE POLICY "messages_delete" ON "public"."messages" FOR DELETE TO authenticated USING' in message


def test_for_all_policy_covers_every_command(rls) -> None:
    rls.execute("create table notes (id int primary key, organization_id uuid)")
    rls.execute("alter table notes enable row level security")
    rls.execute("create policy everything on notes for all to authenticated using (true)")
    rls.assert_policies("notes", count=1, commands={"SELECT", "INSERT", "UPDATE", "DELETE"})


def test_policy_for_public_fails_a_roles_check(rls) -> None:
    rls.execute("create policy wide on conversations for select using (true)")
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_policies("conversations", roles={"authenticated"})
    assert '"wide" TO public' in str(info.value)
    assert 'ALTER POLICY "wide" ON "public"."conversations" TO authenticated;' in str(info.value)


def test_using_true_policy_leaks_reads(rls, alice, bob) -> None:
    rls.execute("create policy oops on conversations for select to authenticated using (true)")
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_isolated("conversations", user=alice, other=bob)
    message = str(info.value)
    assert "public.conversations is not isolated: acting as user 1111" in message
    theirs = SEED.globex.conversations
    assert re.search(rf"LEAK select +the user sees {theirs} of the other tenant's {theirs} rows", message)
    assert re.search(r"ok   delete +no row of the other tenant affected", message)


def test_using_true_update_policy_leaks_updates_and_moves(rls, alice, bob) -> None:
    rls.execute(
        "create policy oops on conversations for update to authenticated using (true) with check (true)"
    )
    rls.execute("create policy oops_read on conversations for select to authenticated using (true)")
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_isolated("conversations", user=alice, other=bob, ops=("update", "move"))
    message = str(info.value)
    assert f"LEAK update  their rows were updated: {SEED.globex.conversations} row(s) affected" in message
    assert "LEAK move    an own row was moved (domain_id, organization_id)" in message
    # rolled back: nothing of the attempt survives
    assert rls.scalar("select count(*) from conversations where organization_id = %s", [GLOBEX]) == SEED.globex.conversations


def test_insert_stopped_only_by_a_constraint_is_not_isolation(rls, alice, bob) -> None:
    rls.execute("drop policy conversations_insert on conversations")
    rls.execute("create policy lax on conversations for insert to authenticated with check (true)")
    rls.execute("alter table conversations add constraint only_acme check (organization_id = '%s')" % ACME
                + " not valid")
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_isolated("conversations", user=alice, other=bob, ops=("insert",))
    assert "stopped only by a constraint (23514 only_acme" in str(info.value)


def test_nothing_to_test_is_an_error_not_a_pass(rls, alice) -> None:
    nobody = rls.user("33333333-3333-3333-3333-333333333333", tenant="cccccccc-0000-0000-0000-000000000003")
    with pytest.raises(RlsAssertionError, match="no rows of user 3333.*nothing to prove isolation on"):
        rls.assert_isolated("conversations", user=alice, other=nobody)


def test_owner_rights_view_is_caught(rls, alice) -> None:
    rls.execute("create view leaky_stats as select id, organization_id, started_at from conversations")
    rls.execute("grant select on leaky_stats to authenticated")
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_no_foreign_rows("leaky_stats", user=alice)
    message = str(info.value)
    assert "public.leaky_stats leaks rows of other tenants: acting as user 1111" in message
    theirs = SEED.globex.conversations
    assert f"{theirs} of the rows read belong to another tenant ({GLOBEX}: {theirs}" in message
    assert "runs with its owner's rights (postgres, who bypasses RLS)" in message
    assert 'ALTER VIEW "public"."leaky_stats" SET (security_invoker = true);' in message
    # the parts, for the sweep's finding (its message and its fix), as fields
    error = info.value
    assert message == f"{error.headline}\n{error.fix}"
    assert error.headline.startswith("public.leaky_stats leaks rows") and error.headline.endswith("by column organization_id).")
    assert error.fix.startswith("Cause: public.leaky_stats is a view that runs with its owner's rights")
    rls.execute("alter view leaky_stats set (security_invoker = true)")
    rls.assert_no_foreign_rows("leaky_stats", user=alice)


def test_security_definer_function_is_caught(rls, alice) -> None:
    rls.execute(
        "create function all_conversations() returns setof conversations language sql stable security definer"
        " as 'select * from conversations'"
    )
    with pytest.raises(RlsAssertionError, match="SECURITY DEFINER"):
        rls.assert_no_foreign_rows("all_conversations()", user=alice, tenant_column="organization_id")


NOTES = """
create table notes (id bigint generated always as identity primary key,
                    user_id uuid not null default auth.uid(), body text);
alter table notes enable row level security;
create policy "Own notes" on notes for select to authenticated using (user_id = auth.uid());
grant select on notes to authenticated;
insert into notes (user_id, body) select case when i % 2 = 0 then '{a}'::uuid else '{b}'::uuid end, 'n' || i
from generate_series(1, 100) i;
""".format(a=ALICE, b=BOB)


def test_unwrapped_auth_uid_is_counted_per_row_with_its_policy_and_fix(rls, alice) -> None:
    for statement in NOTES.strip().split(";\n"):
        rls.execute(statement)
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_evaluated_once("select * from notes", as_user=alice)
    message = str(info.value)
    assert message.startswith("auth.uid() ran 100 times for one statement as user 1111")
    assert "Seq Scan on public.notes — Filter: ran 100 times" in message
    assert 'from policy "Own notes" on public.notes' in message
    assert 'ALTER POLICY "Own notes" ON "public"."notes" USING ((user_id = (select auth.uid())));' in message
    rls.execute('alter policy "Own notes" on notes using (user_id = (select auth.uid()))')
    rls.assert_evaluated_once("select * from notes", as_user=alice)


def test_a_function_that_never_appears_is_an_error(rls, alice) -> None:
    with pytest.raises(RlsAssertionError, match=r"auth.email\(\) does not appear in the plan"):
        rls.assert_evaluated_once("select * from conversations", function="auth.email", as_user=alice)


def test_check_that_casts_text_to_numeric_is_a_defect(rls) -> None:
    rls.execute("alter table messages drop constraint messages_metadata_response_time_positive")
    rls.execute(
        "alter table messages add constraint response_time_positive"
        " check ((metadata ->> 'response_time_ms')::numeric > 0)"
    )
    rls.assert_rejected("messages", {"metadata": {"response_time_ms": -5}}, constraint="response_time_positive")
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_rejected("messages", {"metadata": {"response_time_ms": "fast"}}, constraint="response_time_positive")
    message = str(info.value)
    assert "rejected {\"metadata\": {\"response_time_ms\": \"fast\"}} with 22P02 invalid_text_representation" in message
    assert "expected 23514 check_violation from constraint response_time_positive" in message
    assert "raised from inside constraint response_time_positive" in message
    assert "guard the cast" in message


def test_rejected_assertion_fails_when_the_row_is_accepted(rls) -> None:
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_rejected("conversations", {"metadata": {"status": "active"}})
    assert "public.conversations accepted {\"metadata\": {\"status\": \"active\"}}; expected it to be rejected" in str(info.value)
    assert "conversations_metadata_status_valid" in str(info.value)


def test_rejected_by_another_constraint_than_expected(rls) -> None:
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_rejected(
            "conversations", {"metadata": {"status": "nope"}}, constraint="conversations_metadata_language_length"
        )
    assert "with 23514 check_violation from constraint conversations_metadata_status_valid" in str(info.value)


def test_accepted_assertion_fails_with_the_constraint(rls) -> None:
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_accepted("messages", {"metadata": {"sentiment": "furious"}})
    assert "23514 check_violation" in str(info.value)
    assert "Constraint messages_metadata_sentiment_valid: CHECK" in str(info.value)


def test_missing_index_and_unusable_index_are_told_apart(rls, alice) -> None:
    with pytest.raises(RlsAssertionError, match="The index idx_nope does not exist"):
        rls.assert_index_used("select * from conversations where status = 'waiting'", "idx_nope", as_user=alice)
    with pytest.raises(RlsAssertionError, match="does not use idx_conversations_org_status"):
        rls.assert_index_used("select * from conversations", "idx_conversations_org_status", as_user=alice)


def test_index_read_whole_does_not_count(rls, alice) -> None:
    rls.execute("create index idx_has_language on conversations ((metadata ->> 'language')) where metadata ? 'language'")
    rls.execute("analyze conversations")
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_index_used(
            "select id from conversations where metadata ? 'language' and metadata ->> 'language' = 'ja'",
            "idx_has_language",
            as_user=alice,
        )
    message = str(info.value)
    assert "reads idx_has_language whole, without an index condition" in message
    assert "Not leakproof in idx_has_language: jsonb_exists(jsonb,text), jsonb_object_field_text(jsonb,text)" in message


def test_functions_are_importable_too(rls, alice, bob) -> None:
    assertions.assert_isolated(rls, "messages", user=alice, other=bob, ops=("select",))
    with pytest.raises(RlsAssertionError):
        assertions.assert_policies(rls, "messages", count=1)


def test_the_fix_names_the_policy_of_the_statements_command(rls, alice) -> None:
    rls.execute(NOTES)
    for command in ("update", "delete"):  # same expression, other commands: not the SELECT's policy
        rls.execute(f'create policy "Own notes {command}" on notes for {command} to authenticated using (user_id = auth.uid())')
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_evaluated_once("select * from notes", as_user=alice)
    assert 'from policy "Own notes" on public.notes' in str(info.value)
    rls.execute("grant delete on notes to authenticated")
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_evaluated_once("delete from notes", as_user=alice)
    assert 'ALTER POLICY "Own notes delete" ON "public"."notes" USING ((user_id = (select auth.uid())));' in str(info.value)


def test_a_wrapper_function_is_named_and_wrapped(rls, alice) -> None:
    rls.execute(NOTES)
    rls.execute("create function public.current_uid() returns uuid language sql stable as 'select auth.uid()'")
    rls.execute('alter policy "Own notes" on notes using (user_id = public.current_uid())')
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_evaluated_once("select * from notes", as_user=alice)  # inlined: only auth.uid()'s body shows
    message = str(info.value)
    assert 'from policy "Own notes" on public.notes (through public.current_uid())' in message
    assert 'ALTER POLICY "Own notes" ON "public"."notes" USING ((user_id = (select current_uid())));' in message


def test_a_call_that_takes_the_rows_columns_gets_another_fix(rls, alice) -> None:
    rls.execute(NOTES)
    rls.execute("create function public.is_self(u uuid) returns boolean language sql stable as 'select u = auth.uid()'")
    rls.execute('alter policy "Own notes" on notes using (public.is_self(user_id))')
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_evaluated_once("select * from notes", as_user=alice)
    message = str(info.value)
    assert "passes the row's columns to public.is_self(), so it runs per row however it is wrapped" in message
    assert "ALTER POLICY" not in message


def test_a_call_in_a_policys_subquery_is_traced_to_that_policy(rls, alice) -> None:
    rls.execute(
        "alter policy conversations_select on conversations using (organization_id in ("
        "select m.organization_id from organization_members m where m.user_id = auth.uid()))"
    )
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_evaluated_once("select * from conversations", as_user=alice)
    message = str(info.value)
    assert "Seq Scan on public.organization_members" in message  # where it runs: the subquery's scan
    assert 'from policy "conversations_select" on public.conversations' in message
    assert "WHERE (m.user_id = (select auth.uid()))" in message
