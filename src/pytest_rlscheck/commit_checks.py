"""What a commit would check: deferred constraints and deferred constraint triggers.

Every PostgREST request commits, so a ``deferrable initially deferred`` unique, foreign
key or exclusion constraint, and a deferred constraint trigger, fire at the end of the
request. A test's transaction never commits: without this, a duplicate on a deferred
unique column is accepted here and refused (23505) in production.

:func:`check` fires the pending checks now, in a savepoint of their own that is rolled
back whatever happens: ``SET CONSTRAINTS ALL IMMEDIATE`` runs every pending deferred
check of the transaction and raises the first failure (the real error: 23505, 23503,
23P01, or the trigger's own); rolling the savepoint back puts the constraint modes back as
they were and marks the events it fired pending again (PostgreSQL un-marks the events a
rolled-back subtransaction fired), so nothing else changes. A failure propagates out of the
statement's own savepoint, which undoes the statement as production would undo the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

__all__ = ["COMMIT_CHECK", "check", "check_sql"]

SAVEPOINT = "rlscheck_commit_check"
COMMIT_CHECK = (
    f"SAVEPOINT {SAVEPOINT}",
    "SET CONSTRAINTS ALL IMMEDIATE",
    f"ROLLBACK TO SAVEPOINT {SAVEPOINT}",
    f"RELEASE SAVEPOINT {SAVEPOINT}",
)


def check_sql(before: Sequence[str] = ()) -> str:
    """``before`` then the commit checks, as one multi-statement query (one round trip)."""
    return "\n;\n".join([*before, *COMMIT_CHECK])


def check(conn: psycopg.Connection[Any], before: Sequence[str] = ()) -> None:
    """Fire the transaction's pending deferred checks as a commit would; raise the first
    failure. Only inside a transaction (outside one, there is nothing pending)."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
        if before:
            conn.execute("\n;\n".join(before))
        return
    conn.execute(check_sql(before))
