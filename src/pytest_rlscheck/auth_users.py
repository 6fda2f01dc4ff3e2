"""Supabase Auth's users as the plugin reads and writes them: looking a user up (what their
access token says of them: email, phone, aud, role, is_anonymous, app_metadata,
user_metadata) and creating one as sign-up does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import psycopg

from .access_token import AuthUser

__all__ = ["CREATE_USER_SQL", "EXISTS_SQL", "LOOKUP_SQL", "NOW_SQL", "create", "exists", "lookup", "now"]

EXISTS_SQL = "select to_regclass('auth.users') is not null"
#: The transaction's now() in whole seconds: the ``iat`` of the tokens issued in it.
NOW_SQL = "select floor(extract(epoch from now()))::bigint"
#: now() and the user's row (all null when there is none), in one round trip.
LOOKUP_SQL = (
    "select floor(extract(epoch from now()))::bigint, u.id is not null, u.email, u.phone, u.aud, u.role,"
    " u.is_anonymous, u.raw_app_meta_data, u.raw_user_meta_data"
    " from (select) as one left join auth.users as u on u.id = %(id)s"
)
CREATE_USER_SQL = (
    "insert into auth.users (id, aud, role, email, raw_user_meta_data, raw_app_meta_data, created_at, updated_at)"
    " values (%(id)s, 'authenticated', 'authenticated', %(email)s, %(user)s::jsonb, %(app)s::jsonb, now(), now())"
    " returning id"
)


def exists(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute(EXISTS_SQL).fetchone() == (True,)


def now(conn: psycopg.Connection[Any]) -> int:
    """The transaction's now(), in seconds since the epoch."""
    row = conn.execute(NOW_SQL).fetchone()
    assert row is not None
    return int(row[0])


def lookup(conn: psycopg.Connection[Any], user_id: uuid.UUID) -> tuple[int, AuthUser | None]:
    """The transaction's now() (seconds) and the user's row, or None when there is none."""
    row = conn.execute(LOOKUP_SQL, {"id": user_id}).fetchone()
    assert row is not None
    issued_at, found, email, phone, aud, role, anonymous, app, user = row
    if not found:
        return int(issued_at), None
    return int(issued_at), AuthUser(email, phone, aud, role, bool(anonymous), app, user)


def create(
    conn: psycopg.Connection[Any],
    email: str | None,
    *,
    user_metadata: Mapping[str, Any] | None = None,
    app_metadata: Mapping[str, Any] | None = None,
) -> uuid.UUID:
    """Insert a user (as Supabase Auth would on sign-up); return its id."""
    user_id = uuid.uuid4()
    row = conn.execute(
        CREATE_USER_SQL,
        {
            "id": user_id,
            "email": email or f"user-{user_id.hex[:12]}@rlscheck.test",
            "user": json.dumps(dict(user_metadata or {})),
            "app": json.dumps(dict(app_metadata or {"provider": "email", "providers": ["email"]})),
        },
    ).fetchone()
    assert row is not None
    return row[0]
