"""The isolation probes on big tables: every row of the other tenant is tried, and none of
them travels between Python and the server (issue 8, item 5).

Two tables, made inside the test's transaction: ``notes`` has a tenant column, ``replies``
gets its tenant through ``conversations`` (``tenant_sql``), which the acting user cannot
read for the other tenant — so the key must be evaluated with the owner's rights. The
leaky variant adds a permissive policy per command that admits any row with ``flag`` set
(``status = 'public'``, say); the flagged rows are the other tenant's last, so that an
attempt on a bounded sample of their rows would miss them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from conftest import ACME, ALICE, BOB, GLOBEX

from pytest_rlscheck.errors import RlsAssertionError
from pytest_rlscheck.isolation import ALL_OPS, TenantKey, _visible_tenants, isolation_outcomes

PARENT = "(select c.organization_id from conversations c where c.id = conversation_id)"
MEMBER = "organization_id in (select private.get_user_organization_ids((select auth.uid())))"


@dataclass(frozen=True)
class Shape:
    table: str
    tenant_column: str | None
    tenant_sql: str | None
    columns: str  # besides id, flag and body
    condition: str  # the isolated policies' condition

    @property
    def key(self) -> TenantKey:
        return TenantKey(self.tenant_column, self.tenant_sql)

    @property
    def kwargs(self) -> dict[str, Any]:
        return {"tenant_column": self.tenant_column, "tenant_sql": self.tenant_sql}


NOTES = Shape("notes", "organization_id", None, "organization_id uuid not null references public.organizations (id)", MEMBER)
REPLIES = Shape(
    "replies",
    None,
    PARENT,
    "conversation_id uuid not null references public.conversations (id)",
    "conversation_id in (select c.id from public.conversations c)",  # conversations' own RLS narrows it
)
SHAPES = [pytest.param(NOTES, id="tenant-column"), pytest.param(REPLIES, id="tenant-sql")]


def create(rls, shape: Shape, *, leaky: bool) -> None:
    t = sql.Identifier("public", shape.table)
    rls.execute(
        sql.SQL(
            "create table {t} (id bigint generated always as identity primary key, {cols},"
            " flag boolean not null default false, body text not null default '')"
        ).format(t=t, cols=sql.SQL(shape.columns))
    )
    rls.execute(sql.SQL("alter table {} enable row level security").format(t))
    rls.execute(sql.SQL("grant select, insert, update, delete on {} to authenticated").format(t))
    for command in ("select", "insert", "update", "delete"):
        clause = "with check" if command == "insert" else "using"
        rls.execute(
            sql.SQL("create policy {} on {} for {} to authenticated {} ({})").format(
                sql.Identifier(f"{shape.table}_{command}"), t, sql.SQL(command), sql.SQL(clause), sql.SQL(shape.condition)
            )
        )
    if leaky:  # another permissive policy per command: the flagged rows, whoever's they are
        for command in ("select", "update", "delete"):
            rls.execute(
                sql.SQL("create policy {} on {} for {} to authenticated using (flag)").format(
                    sql.Identifier(f"{shape.table}_flagged_{command}"), t, sql.SQL(command)
                )
            )


def add_rows(rls, shape: Shape, tenant: str, n: int) -> None:
    """``n`` rows of ``tenant``, made by generate_series (for replies, spread over the
    tenant's conversations)."""
    t = sql.Identifier("public", shape.table)
    if shape.tenant_column:
        rls.execute(
            sql.SQL("insert into {} (organization_id, body) select %(org)s, 'n' || g from generate_series(1, %(n)s) g").format(t),
            {"org": tenant, "n": n},
        )
    else:
        rls.execute(
            sql.SQL(
                "insert into {} (conversation_id, body) select cs.ids[1 + mod(g, cardinality(cs.ids))], 'r' || g"
                " from (select array_agg(id order by id) ids from public.conversations where organization_id = %(org)s) cs,"
                " generate_series(1, %(n)s) g"
            ).format(t),
            {"org": tenant, "n": n},
        )


def flag_last(rls, shape: Shape, tenant: str, n: int) -> None:
    """Flag the ``n`` rows of ``tenant`` inserted last (and no other row)."""
    t = sql.Identifier("public", shape.table)
    rls.execute(sql.SQL("update {} set flag = false where flag").format(t))
    rls.execute(
        sql.SQL("update {t} set flag = true where id in (select id from {t} where {w} order by id desc limit %(n)s)").format(
            t=t, w=_of_tenant(shape)
        ),
        {"org": tenant, "n": n},
    )


def _of_tenant(shape: Shape) -> sql.Composable:
    return sql.SQL("organization_id = %(org)s" if shape.tenant_column else f"{PARENT} = %(org)s")


def other_rows(rls, shape: Shape) -> int:
    query = sql.SQL("select count(*) from {} where {}").format(sql.Identifier("public", shape.table), _of_tenant(shape))
    return rls.scalar(query, {"org": GLOBEX})


# -- a leak confined to some of the other tenant's rows ------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_a_leak_confined_to_a_few_of_the_other_tenants_rows_is_caught_by_update_and_delete(rls, alice, bob, shape) -> None:
    create(rls, shape, leaky=True)
    add_rows(rls, shape, ACME, 100)
    add_rows(rls, shape, GLOBEX, 3000)
    flag_last(rls, shape, GLOBEX, 2)  # 2 of 3000, the last ones: a sample of the first would miss them
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_isolated(shape.table, user=alice, other=bob, ops=("update", "delete"), **shape.kwargs)
    message = str(info.value)
    assert f"public.{shape.table} is not isolated: acting as user {ALICE}" in message
    assert "2 of 2 operations reached" in message
    # exactly the flagged rows: every one of the 3000 was tried, the policy admitted two
    assert "LEAK update  their rows were updated: 2 row(s) affected; the other tenant's rows went from 3000 to 3000 " \
           "and their contents changed" in message
    assert "LEAK delete  their rows were deleted: 2 row(s) affected; the other tenant's rows went from 3000 to 2998" in message
    assert other_rows(rls, shape) == 3000  # the attempts were rolled back


@pytest.mark.parametrize("shape", SHAPES)
def test_a_read_leak_confined_to_a_few_rows_is_caught(rls, alice, bob, shape) -> None:
    create(rls, shape, leaky=True)
    add_rows(rls, shape, ACME, 100)
    add_rows(rls, shape, GLOBEX, 3000)
    flag_last(rls, shape, GLOBEX, 2)
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_isolated(shape.table, user=alice, other=bob, ops=("select",), **shape.kwargs)
    assert "LEAK select  the user sees 2 of the other tenant's 3000 rows" in str(info.value)
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_no_foreign_rows(shape.table, user=alice, **shape.kwargs)
    assert f"2 of the rows read belong to another tenant ({GLOBEX}: 2;" in str(info.value)


def test_tenant_sql_is_judged_with_the_owners_rights(rls, alice, bob) -> None:
    """The user cannot see the other tenant's conversations: tenant_sql evaluated as the user
    would give their replies no tenant at all, and the leak would go unseen."""
    create(rls, REPLIES, leaky=True)
    add_rows(rls, REPLIES, GLOBEX, 50)
    flag_last(rls, REPLIES, GLOBEX, 1)
    with rls.as_user(alice):
        assert rls.scalar(f"select count(*) from public.replies where {PARENT} = %s", [GLOBEX]) == 0
        assert rls.scalar("select count(*) from public.replies") == 1  # the flagged row, with no tenant for alice
    outcomes, _ = isolation_outcomes(rls, rls.relation("replies"), REPLIES.key, alice, bob, ("update", "delete"))
    assert [(o.op, o.isolated) for o in outcomes] == [("update", False), ("delete", False)]


def test_revoked_default_execute_privileges_do_not_hide_a_leak(rls, alice, bob) -> None:
    """A project that revokes EXECUTE from PUBLIC by default: the owner's tenant function is
    granted to the user's role explicitly, so the user's statement still reaches the rows."""
    # for what the checks create: as the session's superuser (the owner side acts as postgres)
    rls.execute("set local role none; alter default privileges revoke execute on functions from public; "
                "set local role postgres")
    create(rls, REPLIES, leaky=True)
    add_rows(rls, REPLIES, GLOBEX, 50)
    flag_last(rls, REPLIES, GLOBEX, 1)
    outcomes, _ = isolation_outcomes(rls, rls.relation("replies"), REPLIES.key, alice, bob, ("select", "update", "delete"))
    assert [(o.op, o.isolated) for o in outcomes] == [("select", False), ("update", False), ("delete", False)]


def test_a_refusal_of_the_checks_own_function_is_not_taken_for_isolation(rls, alice, bob, monkeypatch) -> None:
    """Were the grant missing, PostgreSQL would refuse the user's statement (42501) for the
    function, not for the rows: that must fail the check, not pass it."""
    from pytest_rlscheck import isolation

    tenant_as_user = isolation._tenant_as_user

    def without_the_grant(*args: Any) -> Any:
        setup, tenant = tenant_as_user(*args)
        return [s for s in setup if not s.startswith("grant ")], tenant

    monkeypatch.setattr(isolation, "_tenant_as_user", without_the_grant)
    rls.execute("set local role none; alter default privileges revoke execute on functions from public; "
                "set local role postgres")
    create(rls, REPLIES, leaky=True)
    add_rows(rls, REPLIES, GLOBEX, 50)
    with pytest.raises(RlsAssertionError, match=r"could not prepare pg_temp\.rlscheck_tenant \(created by the owner, "
                       r"called as authenticated\): 42501: permission denied for function rlscheck_tenant"):
        rls.assert_isolated("replies", user=alice, other=bob, tenant_sql=PARENT, ops=("update",))


# -- isolated tables still pass ------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_isolated_tables_pass_every_operation(rls, alice, bob, shape) -> None:
    create(rls, shape, leaky=False)
    add_rows(rls, shape, ACME, 100)
    add_rows(rls, shape, GLOBEX, 3000)
    flag_last(rls, shape, GLOBEX, 2)  # the flag means nothing without the flagged policies
    rls.assert_isolated(shape.table, user=alice, other=bob, **shape.kwargs)
    rls.assert_isolated(shape.table, user=bob, other=alice, **shape.kwargs)
    outcomes, theirs = isolation_outcomes(rls, rls.relation(shape.table), shape.key, alice, bob)
    assert theirs == GLOBEX
    assert [(o.op, o.isolated) for o in outcomes] == [(op, True) for op in ALL_OPS]
    assert outcomes[0].detail == "none of the other tenant's 3000 rows visible"


@pytest.mark.parametrize("shape", SHAPES)
def test_tenants_are_inferred_from_what_the_users_see(rls, shape) -> None:
    create(rls, shape, leaky=False)
    add_rows(rls, shape, ACME, 100)
    add_rows(rls, shape, GLOBEX, 300)
    assert _visible_tenants(rls, rls.relation(shape.table), shape.key, rls.user(ALICE)) == {ACME: 100}
    assert _visible_tenants(rls, rls.relation(shape.table), shape.key, rls.user(BOB)) == {GLOBEX: 300}
    rls.assert_isolated(shape.table, user=rls.user(ALICE), other=rls.user(BOB), **shape.kwargs)


def test_a_tenant_sql_that_does_not_run_is_reported(rls, alice, bob) -> None:
    create(rls, REPLIES, leaky=False)
    add_rows(rls, REPLIES, GLOBEX, 10)
    with pytest.raises(RlsAssertionError, match=r"public\.replies: tenant_sql '\(select nope\)' does not run: column \"nope\""):
        rls.assert_isolated("replies", user=alice, other=bob, tenant_sql="(select nope)")
    assert rls.scalar("select count(*) from public.replies") == 10  # the test's transaction is intact
    # the same, when the tenants are inferred from what the users see
    with pytest.raises(psycopg.errors.UndefinedColumn, match='column "nope" does not exist'):
        rls.assert_isolated("replies", user=rls.user(ALICE), other=rls.user(BOB), tenant_sql="(select nope)")
    assert rls.scalar("select count(*) from public.replies") == 10


# -- no per-row traffic --------------------------------------------------------------------------


class Traffic:
    """Bytes of SQL (and parameters) sent on a connection, and of rows fetched back."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.statements = 0


class _Cursor:
    def __init__(self, cursor: Any, traffic: Traffic) -> None:
        self._cursor = cursor
        self._traffic = traffic

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def fetchone(self) -> Any:
        row = self._cursor.fetchone()
        self._traffic.received += len(repr(row))
        return row

    def fetchall(self) -> Any:
        rows = self._cursor.fetchall()
        self._traffic.received += len(repr(rows))
        return rows


@contextmanager
def recorded(monkeypatch: pytest.MonkeyPatch, conn: Any) -> Iterator[Traffic]:
    traffic = Traffic()
    execute = conn.execute

    def recording(query: Any, params: Any = None, **kwargs: Any) -> Any:
        text = query if isinstance(query, (str, bytes)) else query.as_string(conn)
        traffic.sent += len(text) + (len(repr(params)) if params is not None else 0)
        traffic.statements += 1
        return _Cursor(execute(query, params, **kwargs), traffic)

    with monkeypatch.context() as m:
        m.setattr(conn, "execute", recording)
        yield traffic


@pytest.mark.parametrize("shape", SHAPES)
def test_the_probes_traffic_does_not_grow_with_the_table(rls, alice, bob, monkeypatch, shape) -> None:
    """200 rows of the other tenant, then 20,000: the same statements, the same bytes (to a
    few digits of the counts), and still every row tried. Sending the other tenant's row
    addresses, as the probes once did, adds some 17 bytes per row each way."""
    create(rls, shape, leaky=True)
    add_rows(rls, shape, ACME, 100)
    add_rows(rls, shape, GLOBEX, 200)
    rel = rls.relation(shape.table)
    isolation_outcomes(rls, rel, shape.key, alice, bob)  # once unrecorded: the one-off look-ups are made
    runs = []
    for grow in (False, True):
        if grow:
            add_rows(rls, shape, ACME, 9_900)  # the user's own rows too: what the user sees grows as well
            add_rows(rls, shape, GLOBEX, 19_800)
        flag_last(rls, shape, GLOBEX, 2)  # (a write: the user is looked up again, in both runs alike)
        with recorded(monkeypatch, rls.connection) as traffic:
            outcomes, _ = isolation_outcomes(rls, rel, shape.key, alice, bob)
        runs.append((traffic, {o.op: o for o in outcomes}))
    (small, small_ops), (large, large_ops) = runs
    assert other_rows(rls, shape) == 20_000
    for ops, total in ((small_ops, 200), (large_ops, 20_000)):
        assert "the user sees 2 of the other tenant's" in ops["select"].detail
        assert ops["update"].detail.startswith(f"their rows were updated: 2 row(s) affected; the other tenant's rows went from {total}")
        assert ops["delete"].detail.startswith(f"their rows were deleted: 2 row(s) affected; the other tenant's rows went from {total} to {total - 2}")
    assert large.statements == small.statements
    # 19,800 more rows of theirs (and 9,900 of the user's): under 1 byte per 1,000 rows
    assert abs(large.sent - small.sent) < 30, (small.sent, large.sent)
    assert abs(large.received - small.received) < 60, (small.received, large.received)


def test_inferring_tenants_through_tenant_sql_sends_no_rows(rls, monkeypatch) -> None:
    create(rls, REPLIES, leaky=False)
    rel = rls.relation("replies")
    alice = rls.user(ALICE)
    assert _visible_tenants(rls, rel, REPLIES.key, alice) == {}  # once unrecorded: the one-off look-ups are made
    add_rows(rls, REPLIES, ACME, 100)
    with recorded(monkeypatch, rls.connection) as small:
        assert _visible_tenants(rls, rel, REPLIES.key, alice) == {ACME: 100}
    add_rows(rls, REPLIES, ACME, 19_900)
    with recorded(monkeypatch, rls.connection) as large:
        assert _visible_tenants(rls, rel, REPLIES.key, alice) == {ACME: 20_000}
    assert (large.statements, large.sent) == (small.statements, small.sent)
    assert large.received - small.received == len("20000") - len("100")
