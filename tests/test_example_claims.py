"""The optimisation migration's claims, verified on sql/ with the plugin's own assertions,
as a user of the plugin would write them."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ACME, ALICE, BOB, SEED

ALL_COMMANDS = {"SELECT", "INSERT", "UPDATE", "DELETE"}
OLD_SCHEMA = Path(__file__).resolve().parents[1] / "sql/migrations/20240101000000_chat_schema.sql"


# -- policies, RLS, NOT NULL ------------------------------------------------------------


@pytest.mark.parametrize("table", ["conversations", "messages"])
def test_four_policies_cover_every_command(rls, table) -> None:
    rls.assert_rls_enabled(table)
    rls.assert_policies(table, count=4, commands=ALL_COMMANDS, roles={"authenticated"}, permissive=True)


@pytest.mark.parametrize("table", ["organizations", "organization_members", "domains"])
def test_lookup_tables_have_rls_and_a_select_policy(rls, table) -> None:
    rls.assert_rls_enabled(table)
    rls.assert_policies(table, commands={"SELECT"}, roles={"authenticated"})


@pytest.mark.parametrize("table", ["conversations", "messages"])
def test_organization_id_is_backfilled_and_not_null(rls, table) -> None:
    assert rls.relation(table).column("organization_id").not_null
    assert rls.scalar(f"select count(*) from {table} where organization_id is null") == 0


# -- indexes ------------------------------------------------------------------------------
#
# A plan's choice of index follows the sizes of the table and its indexes, and on the
# database the tests share every rolled-back write (an UPDATE of a tenant's rows, a fuzz
# run's inserts) leaves dead rows and index entries behind that grow them: run after
# test_edge_cases, test_fuzz and test_assertion_failures, idx_conversations_org_started_at
# lost to conversations_started_at_idx. Each runs on a fresh copy of the template instead
# (PRISTINE), so what they prove does not depend on what ran before them.

PRISTINE = pytest.mark.rls_fresh_db

INDEX_QUERIES = {
    "idx_conversations_domain_started_at": (
        "select id, started_at from conversations where domain_id = md5('domain-acme-1')::uuid"
        " and started_at >= '2024-04-01' and started_at < '2024-04-15' order by started_at desc limit 50"
    ),
    "idx_conversations_org_started_at": (
        f"select id from conversations where organization_id = '{ACME}'"
        " and started_at >= '2024-04-01' and started_at < '2024-04-08' order by started_at desc"
    ),
    "idx_messages_conversation_created_at": (
        "select role, content from messages where conversation_id = md5('conversation-acme-7')::uuid order by created_at"
    ),
    "idx_conversations_org_status": (
        f"select id from conversations where organization_id = '{ACME}' and status = 'waiting'"
    ),
    "idx_conversations_org_language": (
        f"select id from conversations where organization_id = '{ACME}' and language = 'ja'"
    ),
    "idx_messages_org_role_created_at": (
        f"select id, created_at from messages where organization_id = '{ACME}' and role = 'user'"
        " order by created_at desc limit 20"
    ),
}


HOURLY_REPORT = (
    "select date_trunc('hour', started_at at time zone 'UTC') as hour, count(*) from conversations"
    f" where organization_id = '{ACME}' and date_trunc('hour', started_at at time zone 'UTC')"
    " between '2024-04-01' and '2024-04-03' group by 1 order by 1"
)


@PRISTINE
@pytest.mark.parametrize("index", list(INDEX_QUERIES))
def test_each_index_serves_its_query_under_rls(rls, alice, index) -> None:
    assert rls.scalar("select indisvalid from pg_index where indexrelid = %s::regclass", [index]) is True
    rls.assert_index_used(INDEX_QUERIES[index], index, as_user=alice)


@PRISTINE
def test_hourly_report_index_serves_the_backend(rls) -> None:
    with rls.as_service_role():
        rls.assert_index_used(HOURLY_REPORT, "idx_conversations_org_hour")


@PRISTINE
def test_hourly_report_index_cannot_serve_a_user_under_rls(rls, alice) -> None:
    """The reason the report is a backend job: date_trunc is not LEAKPROOF."""
    with pytest.raises(AssertionError) as info:
        rls.assert_index_used(HOURLY_REPORT, "idx_conversations_org_hour", as_user=alice)
    message = str(info.value)
    assert "As the table owner (no RLS) the same statement does use idx_conversations_org_hour" in message
    assert "date_trunc" in message and "timezone" in message


@PRISTINE
def test_membership_index_serves_the_policy_helpers(rls) -> None:
    # Two memberships in the seed: the planner rightly reads them sequentially, so prove
    # the index can serve the helpers' lookup with sequential scans priced out.
    rls.assert_index_used(
        f"select organization_id from organization_members where user_id = '{ALICE}'",
        "idx_organization_members_user_org",
        force=True,
    )


def test_eight_indexes_in_all(rls) -> None:
    names = set(INDEX_QUERIES) | {"idx_organization_members_user_org", "idx_conversations_org_hour"}
    assert len(names) == 8
    found = {r[0] for r in rls.fetchall("select indexname from pg_indexes where indexname like 'idx\\_%%'")}
    assert found == names


# -- metadata constraints -----------------------------------------------------------------

REJECTED = [
    ("conversations", {"status": "invalid_value"}, "conversations_metadata_status_valid"),
    ("conversations", {"status": 1}, "conversations_metadata_status_valid"),
    ("conversations", {"language": "x" * 11}, "conversations_metadata_language_length"),
    ("conversations", {"language": ["en"]}, "conversations_metadata_language_length"),
    ("conversations", ["not", "an", "object"], "conversations_metadata_is_object"),
    ("messages", {"sentiment": 123}, "messages_metadata_sentiment_valid"),
    ("messages", {"sentiment": "angry"}, "messages_metadata_sentiment_valid"),
    ("messages", {"response_time_ms": -500}, "messages_metadata_response_time_positive"),
    ("messages", {"response_time_ms": "fast"}, "messages_metadata_response_time_positive"),
    ("messages", {"response_time_ms": 0}, "messages_metadata_response_time_positive"),
    ("messages", "a string", "messages_metadata_is_object"),
]
ACCEPTED = [
    ("conversations", {}),
    ("conversations", {"status": "closed", "language": "pt-BR", "channel": "email"}),
    ("conversations", {"language": "x" * 10}),
    ("messages", {"sentiment": "negative", "response_time_ms": 0.5}),
    ("messages", {"response_time_ms": 120000}),
]


@pytest.mark.parametrize("table, metadata, constraint", REJECTED)
def test_invalid_metadata_is_rejected_by_its_constraint(rls, table, metadata, constraint) -> None:
    rls.assert_rejected(table, {"metadata": metadata}, constraint=constraint)


@pytest.mark.parametrize("table, metadata", ACCEPTED)
def test_valid_metadata_is_accepted(rls, table, metadata) -> None:
    rls.assert_accepted(table, {"metadata": metadata})


# -- tenant isolation -----------------------------------------------------------------------


@pytest.mark.parametrize("user, other", [("alice", "bob"), ("bob", "alice")])
@pytest.mark.parametrize("table", ["conversations", "messages"])
def test_tenants_are_isolated(rls, request, table, user, other) -> None:
    rls.assert_isolated(table, user=request.getfixturevalue(user), other=request.getfixturevalue(other))


def test_messages_are_isolated_through_their_conversation(rls, alice, bob) -> None:
    rls.assert_isolated(
        "messages",
        user=alice,
        other=bob,
        tenant_sql="(select c.organization_id from conversations c where c.id = conversation_id)",
    )


def test_tenants_are_inferred_when_not_given(rls) -> None:
    rls.assert_isolated("conversations", user=rls.user(ALICE), other=rls.user(BOB))


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_stats_view_shows_only_own_tenant(rls, request, user) -> None:
    rls.assert_no_foreign_rows("conversations_with_stats", user=request.getfixturevalue(user))


# -- auth.uid(): once per statement now, once per row before ---------------------------------

STATEMENTS = [
    "select * from conversations",
    "select * from messages",
    "select * from conversations_with_stats",
    "select count(*) from messages m join conversations c on c.id = m.conversation_id",
    "update conversations set metadata = metadata where metadata ->> 'status' = 'closed'",
    "delete from messages where role = 'system'",
]


@pytest.mark.parametrize("statement", STATEMENTS)
def test_auth_uid_runs_once_per_statement(rls, alice, statement) -> None:
    rls.assert_evaluated_once(statement, as_user=alice)


def test_policy_helper_calls_counted_by_plan_and_by_postgres_agree(rls, bob) -> None:
    plan = rls.explain("select * from messages", as_user=bob)
    assert plan.evaluations("get_user_organization_ids") == 1
    assert plan.exact_calls("get_user_organization_ids") == 1
    assert plan.exact_calls("auth.uid") is None  # inlined: only the plan can tell
    sites = plan.call_sites("auth.uid")
    assert [(s.node.node_type, s.field, s.evaluations) for s in sites] == [("Result", "Output", 1)]
    assert sites[0].within == ("hashed SubPlan 2", "InitPlan 1")


def test_statement_reading_two_protected_tables_has_two_sites_each_run_once(rls, bob) -> None:
    plan = rls.explain("select count(*) from messages m join conversations c on c.id = m.conversation_id", as_user=bob)
    sites = plan.call_sites("auth.uid")
    assert len(sites) == 2 and all(s.evaluations == 1 for s in sites)
    assert plan.evaluations("get_user_organization_ids") == plan.exact_calls("get_user_organization_ids") == 2


def _restore_old_select_policies(rls) -> None:
    """Put the first migration's SELECT policies back (inside the test's transaction)."""
    rls.execute("drop policy conversations_select on conversations")
    rls.execute("drop policy messages_select on messages")
    text = OLD_SCHEMA.read_text()
    for name in ("Members can view conversations", "Members can view messages"):
        start = text.index(f'create policy "{name}"')
        rls.execute(text[start : text.index(";", start)])


@pytest.mark.parametrize("table, rows", [("conversations", SEED.total.conversations), ("messages", SEED.total.messages)])
def test_old_policy_ran_auth_uid_once_per_row(rls, alice, table, rows) -> None:
    _restore_old_select_policies(rls)
    plan = rls.explain(f"select * from {table}", as_user=alice)
    per_row = [s for s in plan.call_sites("auth.uid") if s.node.loops == rows]
    assert per_row, plan.render()
    assert plan.evaluations("auth.uid") >= rows
    with pytest.raises(AssertionError, match=r"auth.uid\(\) ran \d+ times for one statement"):
        rls.assert_evaluated_once(f"select * from {table}", as_user=alice)
