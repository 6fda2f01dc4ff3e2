"""effects: what belongs to whom across tables, in one query, and what a statement changed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import ACME, ALICE, BOB, GLOBEX, SEED

import pytest_rlscheck
from pytest_rlscheck.catalog import Catalog
from pytest_rlscheck.effects import Scope, diff
from pytest_rlscheck.scratch import OWNER_SQL, identity_sql, rolled_back
from pytest_rlscheck.sqlsplit import split

PACKAGE = Path(pytest_rlscheck.__file__).parent


@pytest.fixture
def scope(rls):
    catalog = Catalog.load(rls.connection, schemas=["public"])
    return Scope.of(rls, catalog, ["public"], rls.config)


def test_a_snapshot_counts_every_tenants_rows_of_every_table(rls, scope) -> None:
    snap = scope.snapshot(rls)
    for tenant in (ACME, GLOBEX):
        counts = SEED.of(tenant)
        assert snap.rows("public.conversations", tenant) == counts.conversations
        assert snap.rows("public.messages", tenant) == counts.messages
        assert snap.rows("public.domains", tenant) == counts.domains
        assert snap.rows("public.organization_members", tenant) == counts.members
    assert snap.owners("public.organizations") == {ACME: 1, GLOBEX: 1}  # configured: tenant_column = "id"
    # the platform's tables, per user
    assert snap.rows("auth.users", ALICE) == 1 and snap.rows("auth.users", BOB) == 1
    assert scope.kind("auth.users") == "user" and scope.kind("public.messages") == "tenant"


def test_a_snapshot_is_one_query(rls, scope, monkeypatch) -> None:
    sent = []
    execute = rls.connection.execute
    monkeypatch.setattr(rls.connection, "execute", lambda q, *a, **k: sent.append(q) or execute(q, *a, **k))
    scope.snapshot(rls)
    assert len(sent) == 1


def test_diff_says_what_changed_for_whom(rls, scope) -> None:
    conn = rls.connection
    statements = [
        OWNER_SQL,
        scope.query(conn),
        # one of Globex's conversations rewritten, one message of Acme removed, a membership added
        f"update public.conversations set visitor_id = 'x' where id = (select id from public.conversations "
        f"where organization_id = '{GLOBEX}' limit 1)",
        f"delete from public.messages where id = (select id from public.messages where organization_id = '{ACME}' limit 1)",
        f"insert into public.organization_members (organization_id, user_id) values ('{GLOBEX}', '{ALICE}')",
        scope.query(conn),
    ]
    results = rolled_back(conn, statements)
    changes = {(c.table, c.owner): c for c in diff(scope.read(results[1].rows), scope.read(results[-1].rows))}
    assert set(changes) == {
        ("public.conversations", GLOBEX), ("public.messages", ACME), ("public.organization_members", GLOBEX),
    }
    conversation = changes[("public.conversations", GLOBEX)]
    assert conversation.rewritten and not conversation.added and conversation.belongs_to(tenant=GLOBEX)
    assert changes[("public.messages", ACME)].removed == 1
    membership = changes[("public.organization_members", GLOBEX)]
    assert membership.added == 1 and membership.belongs_to(tenant=GLOBEX) and not membership.belongs_to(tenant=ACME)
    assert membership.describe() == f"public.organization_members: 1 row(s) of tenant {GLOBEX} added"
    # and it was rolled back
    assert diff(scope.read(results[1].rows), scope.snapshot(rls)) == []


def test_what_a_user_did_is_counted_with_the_owners_rights(rls, scope, alice) -> None:
    """Snapshot, act as the user, snapshot as the owner: RLS hides nothing from the count."""
    conn = rls.connection
    identity = identity_sql(conn, rls.identity_for(alice), rls.settings_in_effect())
    results = rolled_back(conn, [
        OWNER_SQL, scope.query(conn), identity,
        "delete from public.messages where id in (select id from public.messages limit 10)",
        OWNER_SQL, scope.query(conn),
    ])
    changes = diff(scope.read(results[1].rows), scope.read(results[-1].rows))
    assert [(c.table, c.owner, c.removed) for c in changes] == [("public.messages", ACME, 10)]


def test_storage_objects_are_watched_per_owner(rls) -> None:
    """The example has no storage (the shim installs it for projects that use it): here the
    shim's storage schema is applied in the test's transaction."""
    conn = rls.connection
    for statement in split((PACKAGE / "sql" / "supabase_storage.sql").read_text()):
        rls.execute(statement.text)
    scope = Scope.of(rls, Catalog.load(conn, schemas=["public"]), ["public"], rls.config)
    assert scope.kind("storage.objects") == "user"
    results = rolled_back(conn, [
        OWNER_SQL,
        "insert into storage.buckets (id, name) values ('b', 'b')",
        f"insert into storage.objects (bucket_id, name, owner) values ('b', 'bob/a.png', '{BOB}'), "
        f"('b', 'alice/a.png', '{ALICE}')",
        scope.query(conn),
        "delete from storage.objects where name = 'bob/a.png'",
        scope.query(conn),
    ])
    changes = diff(scope.read(results[3].rows), scope.read(results[-1].rows))
    assert [(c.table, c.owner, c.removed, c.belongs_to(user=BOB)) for c in changes] == [("storage.objects", BOB, 1, True)]


def test_a_snapshot_of_the_example_takes_a_few_milliseconds(rls, scope) -> None:
    scope.snapshot(rls)  # warm
    started = time.perf_counter()
    for _ in range(5):
        scope.snapshot(rls)
    assert (time.perf_counter() - started) / 5 < 0.05  # ~8,000 rows: a few ms (50 ms is a generous bound)
