"""Supabase Auth's users as the plugin reads and writes them: looking a user up (email,
app_metadata, user_metadata for the JWT claims) and creating one as sign-up does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import psycopg

__all__ = ["CREATE_USER_SQL", "EXISTS_SQL", "LOOKUP_SQL", "create", "exists", "lookup"]

EXISTS_SQL = "select to_regclass('auth.users') is not null"
LOOKUP_SQL = (
    "select email, raw_app_meta_data as app_metadata, raw_user_meta_data as user_metadata"
    " from auth.users where id = %(id)s"
)
CREATE_USER_SQL = (
    "insert into auth.users (id, aud, role, email, raw_user_meta_data, raw_app_meta_data, created_at, updated_at)"
    " values (%(id)s, 'authenticated', 'authenticated', %(email)s, %(user)s::jsonb, %(app)s::jsonb, now(), now())"
    " returning id"
)


def exists(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute(EXISTS_SQL).fetchone() == (True,)


def lookup(conn: psycopg.Connection[Any], user_id: uuid.UUID) -> dict[str, Any] | None:
    """``{"email", "app_metadata", "user_metadata"}`` of the user, or None."""
    row = conn.execute(LOOKUP_SQL, {"id": user_id}).fetchone()
    return dict(zip(("email", "app_metadata", "user_metadata"), row, strict=True)) if row else None


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
