"""The ``rls`` fixture's object: a connection to the migrated database, impersonation, and
small query helpers.

Two modes:

* transactional (the default): the test runs inside one transaction that is rolled back
  afterwards; each statement runs in a savepoint so that an expected error (a policy
  violation) does not abort the test's transaction; identities are transaction-local,
  exactly as PostgREST sets them.
* fresh database (``rls_fresh_db``): a database cloned for this test alone; statements
  autocommit, identities are session settings restored on exit, and :meth:`Rls.connect`
  opens more connections that see committed rows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from .impersonation import (
    USER_LOOKUP_SQL,
    Identity,
    IdentityStack,
    anon_identity,
    role_identity,
    service_role_identity,
    user_identity,
)
from .session import Database

__all__ = ["Rls"]

Query = str | sql.Composable
Params = Sequence[Any] | Mapping[str, Any] | None

OWNER = Identity("none", {}, "the connection's own role")  # SET ROLE NONE
BEGIN_SQL = "BEGIN; SELECT now()"
END_SQL = "SELECT now(); ROLLBACK"
AUTH_USERS_EXISTS_SQL = "select to_regclass('auth.users') is not null"
CREATE_USER_SQL = (
    "insert into auth.users (id, aud, role, email, raw_user_meta_data, raw_app_meta_data, created_at, updated_at)"
    " values (%(id)s, 'authenticated', 'authenticated', %(email)s, %(user)s::jsonb, %(app)s::jsonb, now(), now())"
    " returning id"
)


class Rls:
    """Acts on the migrated database as the test's owner, or as a user, anon or service_role."""

    def __init__(self, conn: psycopg.Connection[Any], database: Database, *, transactional: bool) -> None:
        self.connection = conn
        self.database = database
        self.transactional = transactional
        self._identities = IdentityStack(conn, local=transactional)
        self._started: datetime | None = None
        self._has_auth_users: bool | None = None

    # -- lifecycle (driven by the fixture) -----------------------------------------

    def _begin(self) -> None:
        if self.transactional:
            cur = self.connection.execute(BEGIN_SQL)
            cur.nextset()
            row = cur.fetchone()
            self._started = row[0] if row else None

    def _end(self) -> bool:
        """Roll the test back. Returns False when the test committed its own transaction."""
        self._identities.forget()
        if not self.transactional:
            return True
        conn = self.connection
        if conn.closed or conn.broken:
            return True  # the server rolled the transaction back with the connection
        status = conn.info.transaction_status
        if status == TransactionStatus.INTRANS:
            row = conn.execute(END_SQL).fetchone()
            return row is not None and row[0] == self._started
        if status == TransactionStatus.INERROR:
            conn.execute("ROLLBACK")
            return True
        return False  # IDLE: the test ran COMMIT (or ROLLBACK) itself

    # -- queries --------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """A libpq connection string for this database."""
        return self.database.dsn

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """Another connection to the same database (sees only committed rows)."""
        return self.database.connect(**kwargs)

    def execute(self, query: Query, params: Params = None) -> psycopg.Cursor[Any]:
        """Run one statement as the current identity; its rows stay readable on the cursor.

        In a transactional test the statement runs in a savepoint: if it fails, the error
        propagates and the test's transaction carries on as before the statement.
        """
        if self.transactional and self.connection.info.transaction_status == TransactionStatus.INTRANS:
            with self.connection.transaction():
                return self.connection.execute(query, params)
        return self.connection.execute(query, params)

    def fetchall(self, query: Query, params: Params = None) -> list[tuple[Any, ...]]:
        return self.execute(query, params).fetchall()

    def fetchone(self, query: Query, params: Params = None) -> tuple[Any, ...] | None:
        return self.execute(query, params).fetchone()

    def scalar(self, query: Query, params: Params = None) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = self.fetchone(query, params)
        return row[0] if row else None

    # -- identities -------------------------------------------------------------------

    @property
    def identity(self) -> Identity | None:
        """The identity in effect, or None for the connection's own role."""
        return self._identities.current

    @contextmanager
    def act_as(self, identity: Identity) -> Iterator[Identity]:
        """Act as ``identity`` inside the block; the previous identity comes back on exit."""
        self._identities.push(identity)
        try:
            yield identity
        finally:
            self._identities.pop()

    def as_user(
        self,
        sub: str | uuid.UUID,
        *,
        role: str = "authenticated",
        claims: Mapping[str, Any] | None = None,
        email: str | None = None,
    ) -> AbstractContextManager[Identity]:
        """Act as a signed-in user: role ``authenticated`` and the claims of their access
        token. ``email``, ``app_metadata`` and ``user_metadata`` come from ``auth.users``
        when the user exists there; ``claims`` are added on top."""
        known = self._lookup_user(sub)
        identity = user_identity(
            sub,
            role=role,
            email=email or (known or {}).get("email"),
            claims=claims,
            app_metadata=(known or {}).get("app_metadata"),
            user_metadata=(known or {}).get("user_metadata"),
        )
        return self.act_as(identity)

    def as_anon(self) -> AbstractContextManager[Identity]:
        """Act as a request made with the anon key."""
        return self.act_as(anon_identity())

    def as_service_role(self) -> AbstractContextManager[Identity]:
        """Act as a request made with the service_role key (bypasses RLS)."""
        return self.act_as(service_role_identity())

    def as_role(self, role: str, settings: Mapping[str, Any] | None = None) -> AbstractContextManager[Identity]:
        """Act as any role with any settings, e.g. ``{"app.current_tenant": tenant_id}``."""
        return self.act_as(role_identity(role, settings))

    @contextmanager
    def as_owner(self) -> Iterator[None]:
        """Drop any impersonation inside the block (the connection's own role)."""
        with self.act_as(OWNER):
            yield

    def _lookup_user(self, sub: str | uuid.UUID) -> dict[str, Any] | None:
        try:
            user_id = uuid.UUID(str(sub))
        except ValueError:
            return None
        if self.identity is not None and self.identity.role != OWNER.role:  # look up with the owner's rights
            with self.as_owner():
                return self._lookup_user(user_id)
        if self._has_auth_users is None:
            self._has_auth_users = self.connection.execute(AUTH_USERS_EXISTS_SQL).fetchone() == (True,)
        if not self._has_auth_users:
            return None
        row = self.connection.execute(USER_LOOKUP_SQL, {"id": user_id}).fetchone()
        if row is None:
            return None
        return {"email": row[0], "app_metadata": row[1], "user_metadata": row[2]}

    def create_user(
        self,
        email: str | None = None,
        *,
        user_metadata: Mapping[str, Any] | None = None,
        app_metadata: Mapping[str, Any] | None = None,
    ) -> uuid.UUID:
        """Insert a user into ``auth.users`` (as Supabase Auth would on sign-up); return its id."""
        user_id = uuid.uuid4()
        with self.as_owner():
            row = self.fetchone(
                CREATE_USER_SQL,
                {
                    "id": user_id,
                    "email": email or f"user-{user_id.hex[:12]}@rlscheck.test",
                    "user": json.dumps(dict(user_metadata or {})),
                    "app": json.dumps(dict(app_metadata or {"provider": "email", "providers": ["email"]})),
                },
            )
        assert row is not None
        return row[0]
