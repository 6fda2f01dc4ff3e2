"""Statements sent in one round trip inside a savepoint: kept when they all succeed, or
undone whatever happens.

PostgreSQL aborts the whole transaction on an error. The test's transaction must survive
the plugin's own statements failing (a role that does not exist, a policy that refuses),
so each batch runs in a savepoint, and the batch is one multi-statement query: one round
trip instead of one per statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

__all__ = ["Result", "bind", "guarded", "rolled_back"]

SAVEPOINT = "rlscheck_scratch"
_UNDO = [f"ROLLBACK TO SAVEPOINT {SAVEPOINT}", f"RELEASE SAVEPOINT {SAVEPOINT}"]


@dataclass(frozen=True)
class Result:
    rows: list[tuple[Any, ...]] | None
    rowcount: int


def bind(conn: psycopg.Connection[Any], query: str | sql.Composable, params: Any = None) -> str:
    """``query`` with ``params`` bound client-side, as SQL text."""
    return psycopg.ClientCursor(conn).mogrify(query, params)


def rolled_back(conn: psycopg.Connection[Any], statements: Sequence[str], *, checked: bool = True) -> list[Result]:
    """Run ``statements`` and undo them; return one :class:`Result` per statement.

    A failing statement raises its error, after the rollback. PostgreSQL parses a whole
    message before it runs any of it, so a syntax error would also stop the SAVEPOINT in
    front: statements not known to parse (``checked=False``: the user's SQL) get the
    savepoint in a round trip of its own."""
    return _run(conn, statements, keep=False, checked=checked)


def guarded(conn: psycopg.Connection[Any], statements: Sequence[str], *, checked: bool = True) -> list[Result]:
    """Run ``statements`` and keep their effects; when one fails, undo them all and raise
    its error with the transaction as it was before (usable)."""
    return _run(conn, statements, keep=True, checked=checked)


def _run(conn: psycopg.Connection[Any], statements: Sequence[str], *, keep: bool, checked: bool) -> list[Result]:
    status = conn.info.transaction_status
    in_transaction = status != TransactionStatus.IDLE
    if status == TransactionStatus.INERROR:  # nothing to protect: let PostgreSQL say so (25P02)
        conn.execute("\n;\n".join(statements))
    if in_transaction:
        head = [f"SAVEPOINT {SAVEPOINT}"]
        tail = [f"RELEASE SAVEPOINT {SAVEPOINT}"] if keep else _UNDO
        undo = _UNDO
    else:  # one multi-statement query is one implicit transaction: an error undoes it all
        head, tail, undo = ([], [], []) if keep else (["BEGIN"], ["ROLLBACK"], ["ROLLBACK"])
    if not checked and head:
        conn.execute(head[0])
        head = []
    try:
        # no parameters: the simple protocol, which takes several statements; each ends on
        # a line of its own so that a trailing -- comment cannot swallow the separator
        cursor = conn.execute("\n;\n".join([*head, *statements, *tail]))
    except psycopg.Error:
        if undo and not conn.closed and conn.info.transaction_status == TransactionStatus.INERROR:
            conn.execute(";\n".join(undo))
        raise
    results: list[Result] = []
    while True:
        results.append(Result(cursor.fetchall() if cursor.description else None, cursor.rowcount))
        if not cursor.nextset():
            break
    return results[len(head) : len(head) + len(statements)]
