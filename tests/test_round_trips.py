"""Round trips behind the per-test path, counted on the wire (libpq's protocol trace of the
test's connection): every message that makes the server answer (a simple Query, or the
Sync that ends a batch of extended-protocol messages) is one round trip."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

ALICE = "11111111-1111-1111-1111-111111111111"
BOB = "22222222-2222-2222-2222-222222222222"


def round_trips(conn: psycopg.Connection[Any], action: Callable[[], Any]) -> list[str]:
    """The client messages of ``action`` that wait for the server (Query, Sync)."""
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            action()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        lines = [line.split("\t") for line in trace.read().splitlines()]
    return [line[3] if len(line) > 3 else "" for line in lines if len(line) > 2 and line[1] == "F"
            and line[2:] and (line[3:4] == ["Query"] or line[3:4] == ["Sync"])]


def test_request_is_one_round_trip(rls) -> None:
    """A statement in as_user (savepoint, the statement, the commit-time checks, release) is
    one round trip; entering as a user seen before costs the lookup and the push, leaving one."""
    with rls.as_user(BOB):  # warms the connection: the role's settings, the proven push
        rls.scalar("select count(*) from conversations")

    def one_test() -> None:
        with rls.as_user(ALICE):
            rls.scalar("select count(*) from conversations")

    assert len(round_trips(rls.connection, one_test)) == 4  # lookup, push, the request, pop


def test_failed_request_leaves_the_transaction_usable(rls) -> None:
    """A failing statement inside the pipelined request: one more round trip undoes it."""
    with rls.as_user(ALICE):
        with pytest.raises(psycopg.errors.UndefinedTable):
            rls.execute("select * from no_such_table")
        with pytest.raises(psycopg.errors.SyntaxError):
            rls.execute("selec 1")
        assert rls.scalar("select count(*) from conversations") >= 0
    assert rls.scalar("select 1") == 1
