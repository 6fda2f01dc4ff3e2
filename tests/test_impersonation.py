"""Impersonation on the worked example: who sees what, and identities always restored."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

ALICE = "11111111-1111-1111-1111-111111111111"  # Acme
BOB = "22222222-2222-2222-2222-222222222222"  # Globex
ACME = "aaaaaaaa-0000-0000-0000-000000000001"
GLOBEX = "bbbbbbbb-0000-0000-0000-000000000002"

COUNTS = "select (select count(*) from conversations), (select count(*) from messages)"


def test_owner_sees_the_whole_seed(rls) -> None:
    assert rls.fetchone(COUNTS) == (2132, 5998)
    assert rls.scalar("select current_user") == "postgres"


@pytest.mark.parametrize("user, expected", [(ALICE, (1200, 3400)), (BOB, (932, 2598))])
def test_each_user_sees_their_tenant_only(rls, user, expected) -> None:
    with rls.as_user(user):
        assert rls.fetchone(COUNTS) == expected
        assert rls.scalar("select count(distinct organization_id) from conversations") == 1
        assert rls.scalar("select count(*) from conversations_with_stats") == expected[0]


def test_anon_sees_nothing_and_service_role_everything(rls) -> None:
    with rls.as_anon():
        assert rls.fetchone(COUNTS) == (0, 0)
        assert rls.scalar("select current_user") == "anon"
        assert rls.scalar("select auth.uid()") is None
        assert rls.scalar("select auth.role()") == "anon"
    with rls.as_service_role():
        assert rls.fetchone(COUNTS) == (2132, 5998)
        assert rls.scalar("select auth.role()") == "service_role"


def test_claims_are_what_postgrest_would_set(rls) -> None:
    with rls.as_user(ALICE, claims={"app_metadata": {"tenant": ACME}, "custom": 1}):
        claims = rls.scalar("select auth.jwt()")
        assert rls.scalar("select current_setting('role')") == "authenticated"
        assert rls.scalar("select auth.uid()") == uuid.UUID(ALICE)
    assert claims["sub"] == ALICE and claims["role"] == "authenticated"
    assert claims["email"] == "alice@acme.test"  # from auth.users
    assert claims["aal"] == "aal1" and claims["is_anonymous"] is False
    assert claims["user_metadata"] == {"full_name": "Alice Archer"}  # from auth.users
    assert claims["app_metadata"] == {"tenant": ACME}  # the extra claims win
    assert claims["custom"] == 1


def test_nested_identities_unwind_in_order(rls) -> None:
    with rls.as_user(BOB):
        with rls.as_user(ALICE):
            assert rls.scalar("select auth.uid()") == uuid.UUID(ALICE)
            with rls.as_anon():
                assert rls.scalar("select current_user") == "anon"
            assert rls.scalar("select current_user") == "authenticated"
        assert rls.scalar("select auth.uid()") == uuid.UUID(BOB)
        assert rls.fetchone(COUNTS) == (932, 2598)
    assert rls.scalar("select current_user") == "postgres"
    assert rls.scalar("select auth.uid()") is None


def test_identity_is_restored_after_an_exception(rls) -> None:
    with pytest.raises(ZeroDivisionError), rls.as_user(ALICE):
        assert rls.scalar("select current_user") == "authenticated"
        1 / 0
    assert rls.scalar("select current_user") == "postgres"
    assert rls.scalar("select auth.uid()") is None
    assert rls.identity is None


def test_a_policy_violation_does_not_abort_the_test_transaction(rls) -> None:
    conversation = rls.scalar("select id from conversations where organization_id = %s limit 1", [GLOBEX])
    domain = rls.scalar("select id from domains where organization_id = %s limit 1", [GLOBEX])
    with rls.as_user(ALICE):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            rls.execute(
                "insert into messages (conversation_id, organization_id, role, content) values (%s, %s, 'user', 'x')",
                [conversation, GLOBEX],
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            rls.execute(
                "insert into conversations (domain_id, organization_id) values (%s, %s)", [domain, GLOBEX]
            )
        # still acting as alice, in the same transaction
        assert rls.fetchone(COUNTS) == (1200, 3400)


def test_rows_written_while_impersonating_stay_visible(rls) -> None:
    domain = rls.scalar("select id from domains where organization_id = %s limit 1", [ACME])
    with rls.as_user(ALICE):
        new_id = rls.scalar(
            "insert into conversations (domain_id, organization_id, metadata) values (%s, %s, %s) returning id",
            [domain, ACME, json.dumps({"status": "active"})],
        )
    assert rls.scalar("select organization_id from conversations where id = %s", [new_id]) == uuid.UUID(ACME)
    assert rls.fetchone(COUNTS) == (2133, 5998)


def test_as_role_with_app_settings(rls) -> None:
    rls.execute("create table notes (tenant text, body text)")
    rls.execute("alter table notes enable row level security")
    rls.execute("create policy by_tenant on notes using (tenant = current_setting('app.current_tenant', true))")
    rls.execute("grant select on notes to authenticated")
    rls.execute("insert into notes values ('t1', 'one'), ('t2', 'two'), ('t2', 'three')")
    with rls.as_role("authenticated", settings={"app.current_tenant": "t2"}):
        assert rls.scalar("select count(*) from notes") == 2
        with rls.as_role("authenticated", settings={"app.current_tenant": "t1"}):
            assert rls.fetchall("select body from notes") == [("one",)]
        assert rls.scalar("select current_setting('app.current_tenant')") == "t2"
    assert rls.scalar("select current_setting('app.current_tenant', true)") in (None, "")


def test_create_user_then_act_as_them(rls) -> None:
    user = rls.create_user("carol@acme.test", user_metadata={"plan": "pro"}, app_metadata={"role": "agent"})
    assert isinstance(user, uuid.UUID)
    rls.execute("insert into organization_members (organization_id, user_id) values (%s, %s)", [ACME, user])
    with rls.as_user(user):
        assert rls.scalar("select auth.email()") == "carol@acme.test"
        assert rls.scalar("select auth.jwt() -> 'app_metadata' ->> 'role'") == "agent"
        assert rls.scalar("select count(*) from conversations") == 1200
    with rls.as_user(ALICE):  # create_user works while impersonating, as the owner
        other = rls.create_user()
        assert rls.scalar("select current_user") == "authenticated"
    assert rls.scalar("select email from auth.users where id = %s", [other]).endswith("@rlscheck.test")


# The next two tests run in this order: the first leaves every kind of identity behind,
# the second proves none of it reached it.


def test_leak_1_leaves_identity_behind(rls) -> None:
    rls.as_user(ALICE).__enter__()  # entered, never exited
    rls.execute("select set_config('request.jwt.claim.sub', %s, false)", [BOB])  # session-level, legacy
    rls.execute("set session role anon")
    assert rls.scalar("select current_user") == "anon"


def test_leak_2_starts_clean(rls) -> None:
    assert rls.identity is None
    assert rls.scalar("select current_user") == "postgres"
    assert rls.scalar("select auth.uid()") is None
    assert rls.scalar("select current_setting('request.jwt.claims', true)") in (None, "")
    assert rls.fetchone(COUNTS) == (2132, 5998)
