"""Statements that must leave no trace, sent in one round trip.

The checks try things (an insert as another user, an EXPLAIN ANALYZE of an UPDATE) that
must be undone. :func:`rolled_back` wraps them in a savepoint (or a transaction, outside
one), rolls it back, and sends it all as one multi-statement query: one round trip instead
of one per statement. Identities set inside with ``set_config(..., true)`` go with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from .impersonation import Identity

__all__ = ["OWNER_SQL", "Result", "bind", "identity_sql", "rolled_back", "settings_sql"]

SAVEPOINT = "rlscheck_scratch"
OWNER_SQL = "select set_config('role', 'none', true)"  # back to the connection's own role


@dataclass(frozen=True)
class Result:
    rows: list[tuple[Any, ...]] | None
    rowcount: int


def bind(conn: psycopg.Connection[Any], query: str | sql.Composable, params: Any = None) -> str:
    """``query`` with ``params`` bound client-side, as SQL text."""
    return psycopg.ClientCursor(conn).mogrify(query, params)


def identity_sql(conn: psycopg.Connection[Any], identity: Identity, reset: Iterable[str] = ()) -> str:
    """One statement that sets ``identity`` for the rest of the transaction (or savepoint),
    blanking the settings in ``reset`` that it does not set itself."""
    names, values = identity.assignments()
    stale = sorted(set(reset) - set(names))
    names, values = names + stale, values + [""] * len(stale)
    calls = sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(n), sql.Literal(v)) for n, v in zip(names, values)
    )
    return sql.SQL("select {}").format(calls).as_string(conn)


def rolled_back(conn: psycopg.Connection[Any], statements: Sequence[str], *, checked: bool = True) -> list[Result]:
    """Run ``statements`` and undo them; return one :class:`Result` per statement.

    A failing statement raises its error, after the rollback. PostgreSQL parses a whole
    message before it runs any of it, so a syntax error would also stop the SAVEPOINT in
    front: statements not known to parse (``checked=False``: the user's SQL) get the
    savepoint in a round trip of its own."""
    in_transaction = conn.info.transaction_status != TransactionStatus.IDLE
    head = [f"SAVEPOINT {SAVEPOINT}"] if in_transaction else ["BEGIN"]
    tail = [f"ROLLBACK TO SAVEPOINT {SAVEPOINT}", f"RELEASE SAVEPOINT {SAVEPOINT}"] if in_transaction else ["ROLLBACK"]
    if not checked:
        conn.execute(head[0])
        head = []
    try:
        # no parameters: the simple protocol, which takes several statements; each ends on
        # a line of its own so that a trailing -- comment cannot swallow the separator
        cursor = conn.execute("\n;\n".join([*head, *statements, *tail]))
    except psycopg.Error:
        if not conn.closed and conn.info.transaction_status == TransactionStatus.INERROR:
            conn.execute(";\n".join(tail))
        raise
    results: list[Result] = []
    while True:
        results.append(Result(cursor.fetchall() if cursor.description else None, cursor.rowcount))
        if not cursor.nextset():
            break
    return results[len(head) : len(head) + len(statements)]


def settings_sql(conn: psycopg.Connection[Any], settings: Mapping[str, str]) -> list[str]:
    return [bind(conn, "select set_config(%s, %s, true)", [name, value]) for name, value in settings.items()]
