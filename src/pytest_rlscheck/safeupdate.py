"""pg-safeupdate, as Supabase loads it for the API: UPDATE and DELETE need a WHERE.

Supabase sets ``session_preload_libraries = 'safeupdate'`` on authenticator, so every
statement PostgREST runs — and every statement a function it calls runs — is refused with
SQLSTATE 21000 when it is an UPDATE or DELETE without a WHERE (``where true`` is enough:
the library looks for a WHERE, not at what it says).

The library is not loaded here (no Debian package or wheel ships it, and a session-wide
switch inside the tests' transactions would not hold): :func:`refusal` reads the text of
each statement run as an API identity and refuses it as the library would — through the
server, so the error is a real ``psycopg.errors.CardinalityViolation``. Statements inside
functions go unchecked (README: what differs from production).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from .sqlsplit import SplitError, split, tokens

__all__ = ["Safeupdate", "refusal", "refuse_sql"]

#: The library's own message and SQLSTATE, raised by the server.
REFUSE_SQL = "do $rlscheck$ begin raise exception using errcode = '21000', message = {}; end $rlscheck$"

#: What a statement starts with, after its WITH list.
_COMMANDS = frozenset({"select", "insert", "update", "delete", "merge", "values", "table"})
_CHECKED = frozenset({"update", "delete"})


def refusal(text: str) -> str | None:
    """The message safeupdate would refuse ``text`` with (its first UPDATE or DELETE whose
    top level has no WHERE), or None. Comments, strings, quoted names and dollar-quoted
    bodies are not read as words; a WHERE inside parentheses (a subquery, a CTE) does not
    count, nor does a DELETE inside a CTE of a SELECT (the library checks the top level)."""
    try:
        statements = split(text)
    except SplitError:
        return None  # not SQL this reader follows: the server will say what it is
    for statement in statements:
        found = _statement_refusal(statement.text)
        if found:
            return found
    return None


def _statement_refusal(text: str) -> str | None:
    depth = 0
    command: str | None = None
    first = True
    for kind, start, end in tokens(text):
        if kind == "punct":
            char = text[start]
            depth += 1 if char == "(" else -1 if char == ")" else 0
            continue
        if kind != "word" or depth > 0:
            continue
        word = text[start:end].lower()
        if command is None:
            if first and word != "with":
                if word not in _CHECKED:
                    return None  # SELECT, INSERT, EXPLAIN, CALL...: nothing to check
                command = word
            elif not first and word in _COMMANDS:
                if word not in _CHECKED:
                    return None
                command = word
            first = False
            continue
        if word == "where":
            return None
        if word == "returning":
            break
    if command is None:
        return None
    return f"{command.upper()} requires a WHERE clause"


def refuse_sql(message: str) -> sql.Composed:
    """A statement the server answers with safeupdate's error (SQLSTATE 21000)."""
    return sql.SQL(REFUSE_SQL).format(sql.Literal(message))


class Safeupdate:
    """safeupdate for the API statements of one connection, emulated."""

    def __init__(self, conn: psycopg.Connection[Any], *, enabled: bool) -> None:
        self._conn = conn
        self.enabled = enabled  # [tool.rlscheck] safeupdate

    def before(self, text: str) -> None:
        """Inside the statement's savepoint: refuse the statement as the library would
        (raising its error), or let it be."""
        if not self.enabled:
            return
        message = refusal(text)
        if message:
            self._conn.execute(refuse_sql(message))

    def after_sql(self) -> list[str]:
        """What ends the statement (sent with the commit checks): nothing, emulated."""
        return []
