"""Impersonation on the worked example: who sees what, and identities always restored.

Every test sets up what it needs (rows, users, identities) inside its own transaction; none
relies on another having run before it. Row counts are the seed's (``conftest.SEED``)."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from conftest import ACME, ALICE, BOB, GLOBEX, NOTES_SCHEMA, NOTES_SEED, SEED, write_project

COUNTS = "select (select count(*) from conversations), (select count(*) from messages)"
PER_TENANT = "select organization_id, count(*) from {table} group by organization_id order by organization_id"


def test_owner_sees_the_whole_seed(rls, seed_counts) -> None:
    """The owner bypasses RLS: its counts, tenant by tenant, are the seed's (and check SEED itself)."""
    assert rls.scalar("select current_user") == "postgres"
    assert rls.fetchone(COUNTS) == (seed_counts.total.conversations, seed_counts.total.messages)
    for table, field in [("organization_members", "members"), ("domains", "domains"),
                         ("conversations", "conversations"), ("messages", "messages")]:
        counts = rls.fetchall(PER_TENANT.format(table=table))
        assert counts == [(uuid.UUID(ACME), getattr(seed_counts.acme, field)),
                          (uuid.UUID(GLOBEX), getattr(seed_counts.globex, field))], table


@pytest.mark.parametrize("user, tenant", [(ALICE, ACME), (BOB, GLOBEX)], ids=["alice", "bob"])
def test_each_user_sees_their_tenant_only(rls, seed_counts, user, tenant) -> None:
    mine = seed_counts.of(tenant)
    with rls.as_user(user):
        assert rls.fetchone(COUNTS) == (mine.conversations, mine.messages)
        assert rls.fetchall("select distinct organization_id from conversations") == [(uuid.UUID(tenant),)]
        assert rls.fetchall("select distinct organization_id from messages") == [(uuid.UUID(tenant),)]
        assert rls.scalar("select count(*) from conversations_with_stats") == mine.conversations


def test_anon_sees_nothing_and_service_role_everything(rls) -> None:
    with rls.as_anon():
        assert rls.fetchone(COUNTS) == (0, 0)
        assert rls.scalar("select current_user") == "anon"
        assert rls.scalar("select auth.uid()") is None
        assert rls.scalar("select auth.role()") == "anon"
    with rls.as_service_role():
        assert rls.fetchone(COUNTS) == (SEED.total.conversations, SEED.total.messages)
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
        assert rls.fetchone(COUNTS) == (SEED.globex.conversations, SEED.globex.messages)
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
        assert rls.fetchone(COUNTS) == (SEED.acme.conversations, SEED.acme.messages)


def test_rows_written_while_impersonating_stay_visible(rls) -> None:
    domain = rls.scalar("select id from domains where organization_id = %s limit 1", [ACME])
    with rls.as_user(ALICE):
        new_id = rls.scalar(
            "insert into conversations (domain_id, organization_id, metadata) values (%s, %s, %s) returning id",
            [domain, ACME, json.dumps({"status": "active"})],
        )
    assert rls.scalar("select organization_id from conversations where id = %s", [new_id]) == uuid.UUID(ACME)
    assert rls.fetchone(COUNTS) == (SEED.total.conversations + 1, SEED.total.messages)


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
        assert rls.scalar("select count(*) from conversations") == SEED.acme.conversations
    with rls.as_user(ALICE):  # create_user works while impersonating, as the owner
        other = rls.create_user()
        assert rls.scalar("select current_user") == "authenticated"
    assert rls.scalar("select email from auth.users where id = %s", [other]).endswith("@rlscheck.test")


LEAKS = """
import pytest

STATE = {}  # what the first test saw, for the second: both run in one pytest process

def test_leaves_identity_behind(rls):
    # entered, never exited (kept referenced: a collected context manager would exit itself)
    STATE["identity"] = rls.as_user("11111111-1111-1111-1111-111111111111")
    STATE["identity"].__enter__()
    assert rls.scalar("select count(*) from notes") == 1
    rls.execute("select set_config('request.jwt.claim.sub', '22222222-2222-2222-2222-222222222222', false)")  # session-level, legacy
    rls.execute("set session role anon")
    assert rls.scalar("select current_user") == "anon"
    assert rls.identity is not None
    STATE["backend"] = rls.connection.info.backend_pid

def test_starts_clean(rls):
    # not vacuous: the leaking test ran first, on this very server session
    assert STATE["backend"] == rls.connection.info.backend_pid
    assert rls.identity is None
    assert rls.scalar("select current_user") == "postgres"
    assert rls.scalar("select session_user") == rls.connection.info.user  # the run's superuser, acting as postgres
    assert rls.scalar("select auth.uid()") is None
    assert rls.scalar("select current_setting('request.jwt.claim.sub', true)") in (None, "")
    assert rls.scalar("select current_setting('request.jwt.claims', true)") in (None, "")
    assert rls.scalar("select count(*) from notes") == 2  # the owner's view, not alice's (1) or anon's
"""


def test_nothing_a_test_leaves_behind_reaches_the_next(pytester: pytest.Pytester) -> None:
    """A test that leaves every kind of identity behind (an identity entered and never
    exited, a session-level JWT setting, SET SESSION ROLE) and the test after it, run in
    that order in a pytest run of their own: the second starts as the owner."""
    write_project(pytester, NOTES_SCHEMA, NOTES_SEED)
    pytester.makepyfile(test_leaks=LEAKS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "--rlscheck-migrations=migrations", "--rlscheck-seed=seed.sql",
        "-v", "test_leaks.py::test_leaves_identity_behind", "test_leaks.py::test_starts_clean", timeout=240,
    )
    result.stdout.fnmatch_lines(["*::test_leaves_identity_behind PASSED*", "*::test_starts_clean PASSED*"])
    result.assert_outcomes(passed=2)
