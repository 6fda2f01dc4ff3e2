"""pg-safeupdate, as Supabase loads it for the API: UPDATE and DELETE need a WHERE.

Supabase sets ``session_preload_libraries = 'safeupdate'`` on authenticator, so every
statement PostgREST runs — and every statement a function it calls runs — is refused with
SQLSTATE 21000 when it is an UPDATE or DELETE without a WHERE (``where true`` is enough:
the library looks for a WHERE, not at what it says).

Where the server has the library, :class:`Safeupdate` loads it and switches it with
``safeupdate.enabled`` around each statement run as an API identity (off for the owner and
for the plugin's probes). Where it is absent, :func:`refusal` reads the statement's own
text and refuses it the same way — through the server, so the error is a real
``psycopg.errors.CardinalityViolation``; statements inside functions go unchecked.
"""

from __future__ import annotations

import weakref
from typing import Any

import psycopg
from psycopg import sql

from .savepoints import rolled_back
from .sqlsplit import SplitError, split, tokens

__all__ = ["Safeupdate", "refusal", "refuse_sql"]

LOAD_SQL = "LOAD 'safeupdate'"
#: Off for the session (the owner, the probes), on only around an API statement.
SESSION_OFF_SQL = "select set_config('safeupdate.enabled', 'off', false)"
ON_SQL = "select set_config('safeupdate.enabled', 'on', true)"
OFF_SQL = "select set_config('safeupdate.enabled', 'off', true)"
#: The library's own message and SQLSTATE, raised by the server.
REFUSE_SQL = "do $rlscheck$ begin raise exception using errcode = '21000', message = {}; end $rlscheck$"

#: What a statement starts with, after its WITH list.
_COMMANDS = frozenset({"select", "insert", "update", "delete", "merge", "values", "table"})
_CHECKED = frozenset({"update", "delete"})

#: Per connection: whether LOAD 'safeupdate' worked there (tried once).
_LOADED: weakref.WeakKeyDictionary[psycopg.Connection[Any], bool] = weakref.WeakKeyDictionary()


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
    """The library on one connection: loaded (and off for the session) if the server has it."""

    def __init__(self, conn: psycopg.Connection[Any], *, enabled: bool) -> None:
        self._conn = conn
        self.enabled = enabled  # [tool.rlscheck] safeupdate
        self._loaded: bool | None = None

    @property
    def loaded(self) -> bool:
        """Whether the server's safeupdate library is loaded on this connection (tried once)."""
        if not self.enabled:
            return False
        if self._loaded is None:
            self._loaded = _LOADED.get(self._conn)
            if self._loaded is None:
                self._loaded = _LOADED[self._conn] = self._load()
        return self._loaded

    def _load(self) -> bool:
        try:  # LOAD is not transactional: the library stays once loaded, the savepoint goes
            rolled_back(self._conn, [LOAD_SQL])
        except psycopg.OperationalError:
            raise  # the connection, not the library
        except psycopg.Error:  # no such file (58P01), or a role that may not LOAD it
            return False
        self._conn.execute(SESSION_OFF_SQL)
        return True

    def before(self, text: str) -> None:
        """Inside the statement's savepoint: switch the library on, or refuse the statement
        as the library would (raising its error)."""
        if not self.enabled:
            return
        if self.loaded:
            self._conn.execute(ON_SQL)
            return
        message = refusal(text)
        if message:
            self._conn.execute(refuse_sql(message))

    def after_sql(self) -> list[str]:
        """What ends the statement (sent with the commit checks): the library off again."""
        return [OFF_SQL] if self.enabled and self._loaded else []
