"""Statements that must leave no trace, sent in one round trip.

The checks try things (an insert as another user, an EXPLAIN ANALYZE of an UPDATE) that
must be undone. :func:`rolled_back` wraps them in a savepoint (or a transaction, outside
one), rolls it back, and sends it all as one multi-statement query: one round trip instead
of one per statement. Identities set inside with ``set_config(..., true)`` go with it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from psycopg import sql

from .impersonation import Identity
from .savepoints import Result, bind, guarded, rolled_back

__all__ = ["OWNER_SQL", "Result", "bind", "guarded", "identity_sql", "rolled_back", "role_is_superuser", "settings_sql",
           "superuser_session"]

#: Back to the session's own role: the superuser the plugin measures with on the throw-away
#: server (the tests' owner side acts as ``postgres`` there, a role set at connection time).
OWNER_SQL = "select set_config('role', 'none', true)"
#: Whether a role (None: the session's own) is a superuser.
ROLE_SUPERUSER_SQL = "select rolsuper from pg_catalog.pg_roles where rolname = coalesce(%s, session_user)"

_SUPERUSER: weakref.WeakKeyDictionary[psycopg.Connection[Any], bool] = weakref.WeakKeyDictionary()


def superuser_session(conn: psycopg.Connection[Any]) -> bool:
    """Whether the session's own role (what :data:`OWNER_SQL` comes back to) is a superuser:
    then the checks may turn triggers off and count function calls. Asked once per connection."""
    if conn not in _SUPERUSER:
        _SUPERUSER[conn] = role_is_superuser(conn, None)
    return _SUPERUSER[conn]


def role_is_superuser(conn: psycopg.Connection[Any], role: str | None) -> bool:
    """Whether ``role`` (None: the session's own role) is a superuser."""
    row = conn.execute(ROLE_SUPERUSER_SQL, [role]).fetchone()
    return bool(row and row[0])


def identity_sql(conn: psycopg.Connection[Any], identity: Identity, reset: Iterable[str] = ()) -> str:
    """One statement that sets ``identity`` for the rest of the transaction (or savepoint),
    blanking the settings in ``reset`` that it does not set itself."""
    names, values = identity.assignments()
    stale = sorted(set(reset) - set(names))
    names, values = names + stale, values + [None] * len(stale)  # NULL: the session's default
    calls = sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(n), sql.Literal(v)) for n, v in zip(names, values)
    )
    return sql.SQL("select {}").format(calls).as_string(conn)


def settings_sql(conn: psycopg.Connection[Any], settings: Mapping[str, str]) -> list[str]:
    return [bind(conn, "select set_config(%s, %s, true)", [name, value]) for name, value in settings.items()]
