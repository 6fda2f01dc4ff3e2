"""The test's transaction on a shared database: begun with a marking savepoint, rolled back
after the test with everything a rollback leaves behind (advisory locks, prepared
statements, sequences, temp tables, cached plans), and told apart from a transaction the
test began itself after committing the fixture's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

__all__ = ["BEGIN_SQL", "END_SQL", "SESSION_RESET_SQL", "TEST_SAVEPOINT", "begin", "end"]

#: The savepoint marks the test's own transaction: when the test ends in an aborted
#: transaction, rolling back to it tells whether that is still the one the fixture began.
TEST_SAVEPOINT = "rlscheck_test"
BEGIN_SQL = f"BEGIN; SAVEPOINT {TEST_SAVEPOINT}; SELECT now()"
#: What a rollback does not undo, undone after it (DISCARD ALL but the settings the
#: connection was opened with, and without the transaction block DISCARD ALL refuses):
#: session advisory locks, prepared statements, sequence state, temp tables, cached plans.
SESSION_RESET_SQL = (
    "SELECT pg_catalog.pg_advisory_unlock_all(); DEALLOCATE ALL; DISCARD SEQUENCES; DISCARD TEMP; DISCARD PLANS"
)
END_SQL = "SELECT now(); ROLLBACK; " + SESSION_RESET_SQL


def begin(conn: psycopg.Connection[Any]) -> datetime | None:
    """Begin the test's transaction; its start time tells it apart later."""
    cur = conn.execute(BEGIN_SQL)
    cur.nextset()
    cur.nextset()
    row = cur.fetchone()
    return row[0] if row else None


def end(conn: psycopg.Connection[Any], started: datetime | None) -> bool:
    """Roll the test back. Returns False when the test committed its own transaction."""
    if conn.closed or conn.broken:
        return True  # the server rolled the transaction back with the connection
    status = conn.info.transaction_status
    if status == TransactionStatus.INTRANS:
        row = conn.execute(END_SQL).fetchone()
        return row is not None and row[0] == started
    if status == TransactionStatus.INERROR:
        try:  # fails when the test committed and this is a transaction it began itself
            conn.execute(f"ROLLBACK TO SAVEPOINT {TEST_SAVEPOINT}")
            ours = True
        except psycopg.errors.InvalidSavepointSpecification:
            ours = False
        conn.execute("ROLLBACK; " + SESSION_RESET_SQL)
        return ours
    return False  # IDLE: the test ran COMMIT (or ROLLBACK) itself
