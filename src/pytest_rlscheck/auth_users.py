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
from .errors import SignUpFailed
from .savepoints import bind, guarded

__all__ = [
    "AS_AUTH_SQL", "CREATE_USER_SQL", "EXISTS_SQL", "LOOKUP_SQL", "NOW_SQL", "create", "exists", "lookup", "now",
]

EXISTS_SQL = "select to_regclass('auth.users') is not null"
#: The transaction's now() in whole seconds: the ``iat`` of the tokens issued in it.
NOW_SQL = "select floor(extract(epoch from now()))::bigint"
#: now() and the user's row (all null when there is none), in one round trip.
#: The row as JSON: an auth.users of an older Auth (a dump's own) may lack a column.
LOOKUP_SQL = (
    "select floor(extract(epoch from now()))::bigint, to_jsonb(u)"
    " from (select) as one left join auth.users as u on u.id = %(id)s"
)
#: Sign-up as Supabase Auth does it: the user, then their email identity, as
#: ``supabase_auth_admin`` with ``search_path = auth`` (how Auth connects). Triggers on
#: ``auth.users`` run so too: one that writes ``public`` tables needs SECURITY DEFINER (or
#: grants for supabase_auth_admin) and schema-qualified names, as in production.
AS_AUTH_SQL = (
    "select current_setting('role'), current_setting('search_path'),"
    " set_config('role', 'supabase_auth_admin', true), set_config('search_path', 'auth', true)"
    " where to_regrole('supabase_auth_admin') is not null"
    " and ((select rolsuper from pg_catalog.pg_roles where rolname = session_user)"
    " or pg_catalog.pg_has_role(session_user, 'supabase_auth_admin', 'MEMBER'))"
)
RESTORE_SQL = "select set_config('role', %(role)s, true), set_config('search_path', %(search_path)s, true)"
CREATE_USER_SQL = (
    "insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,"
    " confirmation_token, recovery_token, email_change_token_new, email_change, raw_app_meta_data,"
    " raw_user_meta_data, is_sso_user, is_anonymous, created_at, updated_at)"
    " values ('00000000-0000-0000-0000-000000000000', %(id)s, 'authenticated', 'authenticated', %(email)s, '',"
    " now(), '', '', '', '', %(app)s::jsonb, %(user)s::jsonb, false, %(anonymous)s, now(), now())"
    " on conflict (id) do nothing returning id"
)
CREATE_IDENTITY_SQL = (
    "insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at,"
    " updated_at) values (%(id)s::text, %(id)s,"
    " jsonb_build_object('sub', %(id)s::text, 'email', %(email)s::text, 'email_verified', false,"
    " 'phone_verified', false), 'email', now(), now(), now())"
)
#: What a failed sign-up says besides Postgres' own message.
SIGN_UP_HINT = (
    "Supabase Auth inserts new users into auth.users as the role supabase_auth_admin, with search_path = auth, "
    "and the sign-up fails with this error in production too. A trigger on auth.users that writes elsewhere "
    "needs SECURITY DEFINER (owned by postgres), schema-qualified names (public.profiles) or "
    "SET search_path = '' on the function, and nothing it calls may need rights supabase_auth_admin lacks."
)


def exists(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute(EXISTS_SQL).fetchone() == (True,)


def now(conn: psycopg.Connection[Any]) -> int:
    """The transaction's now(), in seconds since the epoch."""
    row = conn.execute(NOW_SQL).fetchone()
    assert row is not None
    return int(row[0])


def lookup(conn: psycopg.Connection[Any], user_id: uuid.UUID) -> tuple[int, AuthUser | None]:
    """The transaction's now() (seconds) and the user's row, or None when there is none.

    In a savepoint inside a transaction, all in one round trip: an auth.users a migration
    changed must not abort the test. Raises ``UndefinedTable`` (or ``InvalidSchemaName``)
    when there is no auth.users, the transaction as it was."""
    [result] = guarded(conn, [bind(conn, LOOKUP_SQL, {"id": user_id})])
    assert result.rows
    issued_at, found = result.rows[0]
    if not found:
        return int(issued_at), None
    return int(issued_at), AuthUser(
        found.get("email"), found.get("phone"), found.get("aud"), found.get("role"), bool(found.get("is_anonymous")),
        found.get("raw_app_meta_data"), found.get("raw_user_meta_data"),
    )


def create(
    conn: psycopg.Connection[Any],
    email: str | None,
    *,
    user_metadata: Mapping[str, Any] | None = None,
    app_metadata: Mapping[str, Any] | None = None,
    user_id: uuid.UUID | str | None = None,
    is_anonymous: bool = False,
) -> uuid.UUID:
    """Sign a user up as Supabase Auth does (see :data:`AS_AUTH_SQL`); return its id. An
    existing id is left as it is. Raises :class:`SignUpFailed` when the insert (a trigger
    on it) fails, as the sign-up would on Supabase."""
    user_id = uuid.UUID(str(user_id)) if user_id is not None else uuid.uuid4()
    params = {
        "id": user_id,
        "email": email or f"user-{user_id.hex[:12]}@rlscheck.test",
        "user": json.dumps(dict(user_metadata or {})),
        "app": json.dumps(dict(app_metadata or {"provider": "email", "providers": ["email"]})),
        "anonymous": is_anonymous,
    }
    try:
        with conn.transaction():  # a savepoint: a failed sign-up leaves the test's transaction as it was
            before = conn.execute(AS_AUTH_SQL).fetchone()
            made = conn.execute(CREATE_USER_SQL, params).fetchone()
            if made is not None:
                conn.execute(CREATE_IDENTITY_SQL, params)
            if before is not None:
                conn.execute(RESTORE_SQL, {"role": before[0], "search_path": before[1]})
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        message = (exc.diag.message_primary or str(exc)).strip()
        where = f"\n  context: {exc.diag.context.strip()}" if exc.diag.context else ""
        raise SignUpFailed(
            f"signing up {params['email']} failed: {message} (SQLSTATE {exc.sqlstate}){where}\n  {SIGN_UP_HINT}",
            sqlstate=exc.sqlstate,
            context=exc.diag.context or "",
        ) from exc
    return user_id
