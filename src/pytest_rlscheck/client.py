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

from . import assertions, auth_users, transaction
from .access_token import AuthUser, run_hook, user_claims
from .catalog import Relation, resolve_relation
from .config import SweepConfig
from .errors import RlsAssertionError, RlscheckUsageError
from .explain import function_pattern, run_explain
from .impersonation import (
    OWNER,
    Identity,
    IdentityStack,
    Principal,
    anon_identity,
    claims_identity,
    role_identity,
    service_role_identity,
)
from .isolation import ALL_OPS
from .plans import FunctionPattern, Plan
from .owner import refusal_sql, supautils_plan, supautils_refusal
from .sqlsplit import SplitError, split
from .scratch import role_is_superuser, superuser_session
from .request import Api, Request, probe_identity, request_identity
from .session import Database

__all__ = ["Rls"]

Query = str | sql.Composable
Params = Sequence[Any] | Mapping[str, Any] | None

#: The role, for one statement supautils runs as the superuser, and back.
ROLE_SQL = "select set_config('role', %s, %s)"


class Rls:
    """Acts on the migrated database as the test's owner, or as a user, anon or service_role."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        database: Database,
        *,
        transactional: bool,
        config: SweepConfig | None = None,
    ) -> None:
        self.connection = conn
        self.database = database
        self.transactional = transactional
        self.config: SweepConfig = config or SweepConfig()  # [tool.rlscheck]: tenant columns, principals...
        self._identities = IdentityStack(conn, local=transactional)
        # the tests' owner side: the project's role the connection acts as (postgres on the
        # throw-away server), else the connection's own
        owner = getattr(database, "owner", None)
        self._owner = Identity(owner, {}, f"the table owner ({owner})") if owner else OWNER
        superuser_session(conn)  # asked once per connection, before any check counts its traffic
        self._started: datetime | None = None
        self._has_auth_users: bool | None = None
        self._patterns: dict[str, FunctionPattern] = {}
        # user identities looked up in auth.users; forgotten whenever the test writes
        self._identities_seen: dict[tuple[Any, ...], Identity] = {}
        # the session_id claim of each user's token: one session per user per test
        self._session_ids: dict[str, uuid.UUID] = {}
        # how statements of the as_* blocks run as requests (request.py); made on first use
        self._api: Api | None = None

    # -- lifecycle (driven by the fixture, through test_transaction) ---------------------

    def test_transaction(self) -> TestTransaction:
        """The test's transaction: begun on entry, rolled back on exit (in a transactional
        test); afterwards ``.ours`` says whether the rollback undid the test's own work (False
        when the test committed or rolled back itself). The one owner of that lifecycle, for
        the fixtures, the sweep and the benches alike."""
        return TestTransaction(self)

    def _begin(self) -> None:
        if self.transactional:
            self._started = transaction.begin(self.connection)

    def _end(self) -> bool:
        """Roll the test back. Returns False when the test committed its own transaction."""
        self._identities.forget()
        return transaction.end(self.connection, self._started) if self.transactional else True

    # -- queries --------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """A libpq connection string for this database (``rls_fresh_db`` only: see :meth:`connect`)."""
        self._refuse_second_connection("rls.dsn")
        return self.database.dsn

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """Another connection to the same database (sees only committed rows).

        Only for a database of the test's own (``rls_fresh_db``): what another connection
        commits on the shared database would be seen by every later test."""
        self._refuse_second_connection("rls.connect()")
        return self.database.connect(**kwargs)

    def _refuse_second_connection(self, what: str) -> None:
        if self.transactional:
            raise RlscheckUsageError(
                f"{what}: this test runs inside a transaction on the database all tests share, and a second "
                "connection would commit outside it — what it wrote would be seen by every later test. Use the "
                "rls_fresh_db fixture (or @pytest.mark.rls_fresh_db) for a database of the test's own, where "
                "rls_fresh_db.connect() and rls_fresh_db.dsn work."
            )

    def execute(self, query: Query, params: Params = None) -> psycopg.Cursor[Any]:
        """Run one statement as the current identity; its rows stay readable on the cursor.

        In a transactional test the statement runs in a savepoint: if it fails, the error
        propagates and the test's transaction carries on as before the statement.
        """
        self._identities_seen.clear()  # the statement may change auth.users
        request = self.identity.request if self.identity is not None else None
        if request is not None:  # an as_* block: the statement is one API request
            return self.api.execute(request, query, params)
        if self._api is not None:
            self._api.forget()  # the owner's statement may change role settings
        if self.transactional and self.connection.info.transaction_status == TransactionStatus.INTRANS:
            with self.connection.transaction():
                return self._owner_statements(query, params)
        return self._owner_statements(query, params)

    def _owner_statements(self, query: Query, params: Params) -> psycopg.Cursor[Any]:
        """The owner side's statement(s), each as supautils would have it run (the cursor is
        the last one's)."""
        cursor: psycopg.Cursor[Any] | None = None
        for statement, statement_params, after in self._as_supautils_runs(query, params):
            cursor = self._owner_execute(statement, statement_params, after)
        assert cursor is not None
        return cursor

    def _as_supautils_runs(self, query: Query, params: Params) -> list[tuple[Query, Params, tuple[str, ...] | None]]:
        """``query`` as it is (one round trip), unless Supabase's supautils treats one of its
        statements apart; then each statement with how it runs: as the superuser with the
        statements to run after it so (``SET session_replication_role``, a privileged
        extension, a policy on storage.objects...), in place of one it refuses ``postgres``
        the statement that raises as it does (altering a platform role...), or as written.
        Off the throw-away server, and while another identity is in effect, as written."""
        as_written: list[tuple[Query, Params, tuple[str, ...] | None]] = [(query, params, None)]
        if self._owner is OWNER or (self.identity is not None and self.identity is not self._owner):
            return as_written
        text = query if isinstance(query, str) else query.as_string(self.connection)
        statements = [text]
        if params is None:  # (with parameters, psycopg sends one statement)
            try:
                statements = [s.text for s in split(text)] or [text]
            except SplitError:
                pass
        runs: list[tuple[Query, Params, tuple[str, ...] | None]] = []
        for statement in statements:
            after = supautils_plan(statement)
            message = supautils_refusal(statement) if after is None else None
            # (a plain PostgreSQL project's postgres is a superuser, which supautils lets be)
            if message is not None and not role_is_superuser(self.connection, self._owner.role):
                runs.append((refusal_sql(message), None, None))
            else:
                runs.append((statement, params, after))
        if all(run[0] is statement and run[2] is None for run, statement in zip(runs, statements)):
            return as_written
        return runs

    def _owner_execute(self, query: Query, params: Params, after: tuple[str, ...] | None) -> psycopg.Cursor[Any]:
        if after is None:
            return self.connection.execute(query, params)
        local = self.transactional
        self.connection.execute(ROLE_SQL, ["none", local])
        try:
            cursor = self.connection.execute(query, params)
            for statement in after:
                self.connection.execute(statement)
        finally:
            if self.connection.info.transaction_status != TransactionStatus.INERROR:
                self.connection.execute(ROLE_SQL, [self._owner.role, local])
        return cursor

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

    @property
    def api(self) -> Api:
        """How the statements of ``as_*`` blocks run as PostgREST requests (:mod:`.request`)."""
        if self._api is None:
            self._api = Api(self.connection, safeupdate=self.config.safeupdate)
        self._api.safeupdate.enabled = self.config.safeupdate  # [tool.rlscheck] safeupdate, as configured now
        return self._api

    def _request(self, base: Identity, request: Request) -> Identity:
        """``base`` as PostgREST sets it for ``request`` (role settings read once per role)."""
        return request_identity(base, request, self.config.platform, self.api.role_settings(base.role))

    def as_user(
        self,
        sub: str | uuid.UUID | Principal,
        *,
        role: str | None = None,
        claims: Mapping[str, Any] | None = None,
        email: str | None = None,
        method: str = "GET",
        path: str | None = "/",
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        read_only: bool = False,
        pre_request: bool = True,
    ) -> AbstractContextManager[Identity]:
        """Act as a signed-in user with the claims of the access token Supabase Auth would
        issue them (:mod:`.access_token`): ``email``, ``phone``, ``aud``, ``role``,
        ``is_anonymous`` and the metadata come from ``auth.users`` when the user exists
        there; ``iss`` and ``exp`` from the platform's settings; ``iat`` is the
        transaction's now(). The custom access token hook, when config.toml enables one,
        runs on them as Auth runs it; ``role`` and ``claims`` given here are applied last, on
        top. ``sub`` may be a :class:`Principal` (from :meth:`user`).

        Each statement in the block runs as one PostgREST request: ``method``, ``path``,
        ``headers`` and ``cookies`` are its ``request.*`` settings, search_path and the
        role's own settings are the API's, ``read_only`` runs it READ ONLY (as GET and
        HEAD are), ``pre_request`` calls authenticator's ``pgrst.db_pre_request`` first;
        safeupdate and the commit-time checks apply (see :mod:`.request`)."""
        __tracebackhide__ = True  # a refused sign-in is reported at the test's line
        request = Request(method, path, dict(headers or {}), dict(cookies or {}), read_only, pre_request)
        return self.act_as(self._request(self._user_identity(sub, role=role, claims=claims, email=email), request))

    def _user_identity(
        self,
        sub: str | uuid.UUID | Principal,
        *,
        role: str | None = None,
        claims: Mapping[str, Any] | None = None,
        email: str | None = None,
    ) -> Identity:
        __tracebackhide__ = True
        if isinstance(sub, Principal):
            role, email = sub.role, email or sub.email
            claims = {**(sub.claims or {}), **(claims or {})}
            sub = sub.sub
        key = (str(sub), role, email, json.dumps(claims or {}, sort_keys=True, default=str))
        if key not in self._identities_seen:
            self._identities_seen[key] = self._new_user_identity(sub, role=role, claims=claims, email=email)
        return self._identities_seen[key]

    def _new_user_identity(
        self, sub: str | uuid.UUID, *, role: str | None, claims: Mapping[str, Any] | None, email: str | None
    ) -> Identity:
        __tracebackhide__ = True
        issued_at, known = self._lookup_user(sub)
        platform = self.config.platform
        session_id = self._session_ids.setdefault(str(sub), uuid.uuid4())
        payload = user_claims(sub, user=known or AuthUser(), platform=platform, issued_at=issued_at,
                              session_id=session_id, email=email)
        if platform.access_token_hook is not None:
            with self.as_owner():  # Auth's own connection: no request's role or claims
                payload = run_hook(self.connection, platform.access_token_hook, str(sub), payload)
        if role is not None:
            payload["role"] = role
        payload.update(claims or {})
        return claims_identity(payload, f"user {sub}")

    def as_anon(
        self,
        *,
        method: str = "GET",
        path: str | None = "/",
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        read_only: bool = False,
        pre_request: bool = True,
    ) -> AbstractContextManager[Identity]:
        """Act as a request made with the anon key (the request arguments: see :meth:`as_user`)."""
        request = Request(method, path, dict(headers or {}), dict(cookies or {}), read_only, pre_request)
        return self.act_as(self._request(anon_identity(self.config.platform), request))

    def as_service_role(
        self,
        *,
        method: str = "GET",
        path: str | None = "/",
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        read_only: bool = False,
        pre_request: bool = True,
    ) -> AbstractContextManager[Identity]:
        """Act as a request made with the service_role key (bypasses RLS; the request
        arguments: see :meth:`as_user`)."""
        request = Request(method, path, dict(headers or {}), dict(cookies or {}), read_only, pre_request)
        return self.act_as(self._request(service_role_identity(self.config.platform), request))

    def as_role(
        self,
        role: str,
        settings: Mapping[str, Any] | None = None,
        *,
        api: bool = False,
        method: str = "GET",
        path: str | None = "/",
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        read_only: bool = False,
        pre_request: bool = True,
    ) -> AbstractContextManager[Identity]:
        """Act as any role with any settings, e.g. ``{"app.current_tenant": tenant_id}``: a
        plain role switch, or with ``api=True`` a PostgREST request as that role (the
        request arguments: see :meth:`as_user`)."""
        identity = role_identity(role, settings)
        if not api:
            return self.act_as(identity)
        request = Request(method, path, dict(headers or {}), dict(cookies or {}), read_only, pre_request)
        return self.act_as(self._request(identity, request))

    def start_as(self, who: Any) -> None:
        """Act as ``who`` (see :meth:`identity_for`) until the test ends: ``@pytest.mark.rls_user``."""
        identity = self.identity_for(who)
        if identity is not None:
            self._identities.push(identity)

    def settings_in_effect(self) -> set[str]:
        """The request settings the identities in effect set (besides the role): a statement
        run as another identity blanks them, as a new request would have them."""
        return self._identities.names_in_effect()

    @contextmanager
    def as_owner(self) -> Iterator[None]:
        """Drop any impersonation inside the block: the project's own role (``postgres`` on
        the throw-away server, as Supabase's migrations and SQL editor run; else the
        connection's own)."""
        if self.identity is None or self.identity is self._owner:
            yield  # already the owner: no round trip
            return
        with self.act_as(self._owner):
            yield

    def _lookup_user(self, sub: str | uuid.UUID) -> tuple[int, AuthUser | None]:
        """The transaction's now() (the token's ``iat``) and the user's auth.users row."""
        if self.identity is not None and self.identity.role != self._owner.role:  # look up with the owner's rights
            with self.as_owner():
                return self._lookup_user(sub)
        try:
            user_id = uuid.UUID(str(sub))
        except ValueError:
            user_id = None
        if user_id is not None and self._has_auth_users is not False:
            try:  # one round trip, in a savepoint: a migration may have changed auth.users
                return auth_users.lookup(self.connection, user_id)
            except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
                self._has_auth_users = False  # no auth.users: a token of the sub alone
        with self.safely():
            return auth_users.now(self.connection), None

    def create_user(
        self,
        email: str | None = None,
        *,
        user_metadata: Mapping[str, Any] | None = None,
        app_metadata: Mapping[str, Any] | None = None,
    ) -> uuid.UUID:
        """Insert a user into ``auth.users`` (as Supabase Auth would on sign-up); return its id."""
        self._identities_seen.clear()
        with self.as_owner(), self.safely():
            return auth_users.create(self.connection, email, user_metadata=user_metadata, app_metadata=app_metadata)

    # -- principals and catalog -------------------------------------------------------

    def user(
        self,
        sub: str | uuid.UUID,
        *,
        tenant: Any = None,
        role: str = "authenticated",
        claims: Mapping[str, Any] | None = None,
        email: str | None = None,
    ) -> Principal:
        """A user for the isolation checks. ``tenant`` is theirs (else inferred from the rows
        they can see); a name from ``[tool.rlscheck.principals]`` works as ``sub`` too."""
        configured = self.config.principals.get(str(sub))
        if configured is not None:
            return Principal(
                configured.sub,
                tenant if tenant is not None else configured.tenant,
                configured.role or role,
                {**(configured.claims_dict() or {}), **(claims or {})},
                email or configured.email,
            )
        return Principal(str(sub), None if tenant is None else str(tenant), role, claims, email)

    def principal(self, value: Any) -> Principal:
        """A Principal from a Principal, a configured name, a ``sub``, or a mapping."""
        if isinstance(value, Principal):
            return value
        if isinstance(value, Mapping):
            return self.user(value["sub"], tenant=value.get("tenant"), role=value.get("role", "authenticated"),
                             claims=value.get("claims"), email=value.get("email"))
        return self.user(value)

    def relation(self, name: str) -> Relation:
        """A table or view as the catalog describes it (policies, constraints, indexes...)."""
        try:
            with self.as_owner(), self.safely():
                return resolve_relation(self.connection, name)
        except LookupError as exc:
            raise RlsAssertionError(str(exc)) from None
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:  # not a name at all ("a.b.c.d", "x y")
            raise RlsAssertionError(f"{name!r} is not a relation name PostgreSQL can look up: {exc}") from None

    def owner_fetchall(self, query: Query, params: Params = None) -> list[tuple[Any, ...]]:
        """Rows of ``query`` run with the connection's own rights, whoever is impersonated."""
        with self.as_owner(), self.safely():
            return self.connection.execute(query, params).fetchall()

    @contextmanager
    def safely(self) -> Iterator[None]:
        """Queries in a savepoint (inside the test's transaction): when one fails, the test's
        transaction is as it was, and the test can go on. The checks run their own reads
        through it."""
        if self.transactional and self.connection.info.transaction_status == TransactionStatus.INTRANS:
            with self.connection.transaction():
                yield
        else:
            yield

    # -- plans ------------------------------------------------------------------------

    def explain(
        self,
        query: Query,
        params: Params = None,
        *,
        as_user: Any = None,
        settings: Mapping[str, str] | None = None,
        count_calls: bool = True,
    ) -> Plan:
        """``EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON)`` of ``query`` in a savepoint that is
        rolled back, as ``as_user`` (a Principal, a ``sub``, an Identity) or the current
        identity, with planner ``settings`` (e.g. ``{"enable_seqscan": "off"}``) for it alone.
        ``count_calls``: also count calls with track_functions (``Plan.exact_calls``)."""
        # no request timeouts; without an identity, the owner side's role (postgres), as rls.execute
        identity = probe_identity(self.identity_for(as_user) or self.identity)
        if identity is None and self._owner is not OWNER:
            identity = self._owner
        return run_explain(
            self.connection, query, params, identity=identity, in_effect=self.settings_in_effect(),
            settings=settings, count_calls=count_calls, patterns=self.function_pattern,
            label=(identity or self.identity or Identity("", {}, "")).label,
        )

    def register_function_pattern(self, pattern: FunctionPattern) -> None:
        """Recognise ``pattern.name`` in plans by ``pattern`` from now on (e.g. current_setting()
        minus the inlined bodies of auth.*())."""
        self._patterns[pattern.name] = pattern

    def function_pattern(self, name: str) -> FunctionPattern:
        """How ``name`` appears in plan text (its inlined body, or its name)."""
        if name not in self._patterns:
            with self.as_owner(), self.safely():
                self._patterns[name] = function_pattern(self.connection, name)
        return self._patterns[name]

    def identity_for(self, who: Any) -> Identity | None:
        """The Identity to act as for ``who``: an Identity, a Principal, a configured name, a
        ``sub`` or a mapping (users are looked up in ``auth.users`` once per test); None for None."""
        if who is None:
            return None
        if isinstance(who, Identity):
            return who
        return self._user_identity(self.principal(who))

    # -- assertions (also importable from pytest_rlscheck.assertions) ---------------------

    def assert_rls_enabled(self, table: str, *, forced: bool | None = None) -> None:
        assertions.assert_rls_enabled(self, table, forced=forced)

    def assert_policies(self, table: str, **kwargs: Any) -> None:
        assertions.assert_policies(self, table, **kwargs)

    def assert_isolated(
        self,
        table: str,
        *,
        user: Any,
        other: Any,
        tenant_column: str | None = None,
        tenant_sql: str | None = None,
        ops: Sequence[str] = ALL_OPS,
        anon: bool = True,
    ) -> None:
        assertions.assert_isolated(
            self, table, user=self.principal(user), other=self.principal(other),
            tenant_column=tenant_column, tenant_sql=tenant_sql, ops=ops, anon=anon,
        )

    def assert_no_foreign_rows(
        self, relation: str, *, user: Any, tenant_column: str | None = None, tenant_sql: str | None = None
    ) -> None:
        assertions.assert_no_foreign_rows(
            self, relation, user=self.principal(user), tenant_column=tenant_column, tenant_sql=tenant_sql
        )

    def assert_rejected(
        self, table: str, row: Mapping[str, Any], *, constraint: str | None = None, sqlstate: str = "23514"
    ) -> None:
        assertions.assert_rejected(self, table, row, constraint=constraint, sqlstate=sqlstate)

    def assert_accepted(self, table: str, row: Mapping[str, Any]) -> None:
        assertions.assert_accepted(self, table, row)

    def assert_evaluated_once(
        self, query: str, *, function: str = "auth.uid", as_user: Any = None, params: Params = None
    ) -> None:
        assertions.assert_evaluated_once(self, query, function=function, as_user=as_user, params=params)

    def fuzz_constraint(
        self,
        table: str,
        column: str,
        *,
        base_row: Mapping[str, Any] | None = None,
        oracle: Any = None,
        max_examples: int = 200,
        strategy: Any = None,
        settings: Any = None,
    ) -> Any:
        """Fuzz ``table.column``'s CHECK constraints with Hypothesis (see :mod:`pytest_rlscheck.fuzz`)."""
        from .fuzz import fuzz_constraint

        return fuzz_constraint(
            self, table, column, base_row=base_row, oracle=oracle, max_examples=max_examples, strategy=strategy,
            settings=settings,
        )

    def assert_index_used(
        self, query: str, index: str, *, as_user: Any = None, params: Params = None, force: bool = False
    ) -> None:
        assertions.assert_index_used(self, query, index, as_user=as_user, params=params, force=force)


class TestTransaction:
    """See :meth:`Rls.test_transaction`."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, rls: Rls) -> None:
        self._rls = rls
        self.ours: bool | None = None  # known once ended

    def begin(self) -> TestTransaction:
        self._rls._begin()
        return self

    def end(self) -> bool:
        """Roll back; False when the test had ended the transaction itself."""
        self.ours = self._rls._end()
        return self.ours

    def __enter__(self) -> TestTransaction:
        return self.begin()

    def __exit__(self, *exc: object) -> None:
        self.end()

