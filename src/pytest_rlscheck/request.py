"""The request as PostgREST (v12) makes it, for ``rls.as_user`` / ``as_anon`` / ``as_service_role``.

Per request PostgREST sets, transaction-locally: ``search_path`` (the request's schema,
then ``[api] extra_search_path``), the impersonated role's own settings (``ALTER ROLE anon
SET statement_timeout = '3s'``: SET ROLE would not apply them), ``role``,
``request.jwt.claims``, ``request.method``, ``request.path``, ``request.headers`` and
``request.cookies`` (JSON objects, lower-case header names). It then calls the
``pgrst.db_pre_request`` function, if authenticator has one, runs the statement (in a READ
ONLY transaction for GET and HEAD), and commits (:mod:`.commit_checks`). Supabase also
loads pg-safeupdate (:mod:`.safeupdate`).

:func:`request_identity` builds the identity an ``as_*`` block pushes; :class:`Api` runs
each statement of such a block the way the request would run it.
"""

from __future__ import annotations

import base64
import json
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from . import commit_checks
from .errors import RlscheckUsageError
from .impersonation import CLAIMS, Identity
from .platform_config import PlatformConfig
from .safeupdate import Safeupdate
from .sqlsplit import SplitError, split

__all__ = ["Api", "Request", "probe_identity", "request_identity"]

#: The login role PostgREST connects as; its settings are the API session's.
AUTHENTICATOR = "authenticator"
#: Settings a probe must not inherit from a request (they would make measurements flaky).
TIMEOUTS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
#: The gateway's prefix in front of PostgREST's own paths.
REST_PREFIX = "/rest/v1"
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})
#: A signature that is not one: the placeholder tokens are JWT-shaped but unsigned.
UNSIGNED = "rlscheck-unsigned"

#: Both roles' settings, general (database 0) and for this database; and authenticator's
#: pre-request function. One round trip, and cheap: which of the names a session may set
#: is asked apart (:data:`SETTABLE_SQL`), once per name and connection.
ROLE_SETTINGS_SQL = """
select r.rolname, s.setdatabase <> 0 as this_database, c.name, c.value
  from pg_catalog.pg_db_role_setting s
  join pg_catalog.pg_roles r on r.oid = s.setrole
  cross join lateral (
    select substr(setting, 1, strpos(setting, '=') - 1) as name, substr(setting, strpos(setting, '=') + 1) as value
      from unnest(s.setconfig) as setting
  ) as c
 where r.rolname = any(%(roles)s::text[])
   and s.setdatabase in (0, (select oid from pg_catalog.pg_database where datname = pg_catalog.current_database()))
 order by s.setdatabase
"""
#: Which of these settings a session may set (pg_settings is the costly part: it renders
#: every setting the server has, ~1.5 ms).
SETTABLE_SQL = "select name from pg_catalog.pg_settings where context = 'user' and name = any(%(names)s::text[])"
PRE_REQUEST = "pgrst.db_pre_request"
READ_ONLY_SQL = "select set_config('transaction_read_only', 'on', true)"


@dataclass(frozen=True)
class Request:
    """How one ``as_*`` block's statements reach the database: each is one request."""

    method: str = "GET"
    path: str | None = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    read_only: bool = False
    pre_request: bool = True
    #: authenticator's ``pgrst.db_pre_request`` (schema, function), when it has one
    pre_request_function: tuple[str | None, str] | None = None


@dataclass(frozen=True)
class RoleSettings:
    """What pg_db_role_setting says for a request as ``role``."""

    session: dict[str, str]  # authenticator's: the API connection's session settings
    role: dict[str, str]  # the impersonated role's, as PostgREST applies them
    pre_request: str | None


#: Per connection, what pg_settings said of a setting name: whether a session may set it
#: (context 'user'). A custom name's no is not kept: it turns settable once the session
#: defines it (set_config makes a placeholder); a built-in name's context never changes.
_SETTABLE: weakref.WeakKeyDictionary[psycopg.Connection[Any], dict[str, bool]] = weakref.WeakKeyDictionary()


def _settable(conn: psycopg.Connection[Any], names: set[str]) -> set[str]:
    known = _SETTABLE.setdefault(conn, {})
    unknown = sorted(name for name in names if name not in known or (not known[name] and "." in name))
    if unknown:
        yes = {name for (name,) in conn.execute(SETTABLE_SQL, {"names": unknown}).fetchall()}
        known.update((name, name in yes) for name in unknown)
    return {name for name in names if known.get(name)}


def read_role_settings(conn: psycopg.Connection[Any], role: str) -> RoleSettings:
    session: dict[str, str] = {}
    own: dict[str, str] = {}
    pre_request: str | None = None
    rows = conn.execute(ROLE_SETTINGS_SQL, {"roles": [role, AUTHENTICATOR]}).fetchall()
    settable = _settable(conn, {name for _, _, name, _ in rows if name != PRE_REQUEST})
    for rolname, this_database, name, value in rows:
        if rolname == AUTHENTICATOR:
            if name == PRE_REQUEST:
                pre_request = value  # this database's overrides the general one (ordered)
            elif name in settable:  # a login applies both, this database's last
                session[name] = value
        if rolname == role and not this_database and name in settable and name != "default_transaction_isolation":
            # PostgREST reads pg_roles.rolconfig (general settings only) and lower-cases values
            own[name] = value.lower()
    return RoleSettings(session, own, pre_request or None)


def function_name(value: str) -> tuple[str | None, str]:
    """``schema.fn`` (either part may be double-quoted) as (schema or None, fn)."""
    parts: list[str] = []
    current, quoted, i = "", False, 0
    while i < len(value):
        char = value[i]
        if char == '"':
            if quoted and value[i + 1 : i + 2] == '"':
                current, i = current + '"', i + 2
                continue
            quoted = not quoted
        elif char == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char if quoted else "" if char.isspace() else char.lower()
        i += 1
    parts.append(current)
    if len(parts) == 1:
        return None, parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise RlscheckUsageError(f"{PRE_REQUEST} = {value!r} is not a function name (schema.function)")


def postgrest_path(path: str | None) -> str | None:
    """The path PostgREST sees: the gateway's ``/rest/v1`` prefix goes."""
    if path is None:
        return None
    if path == REST_PREFIX or path.startswith(REST_PREFIX + "/"):
        path = path[len(REST_PREFIX) :] or "/"
    return path if path.startswith("/") else "/" + path


def token(payload: Mapping[str, Any]) -> str:
    """A JWT-shaped but unsigned token of ``payload`` (for headers: never a valid key)."""
    def part(value: Mapping[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}.{UNSIGNED}"


def request_headers(
    method: str, identity: Identity, platform: PlatformConfig, headers: Mapping[str, str]
) -> dict[str, str]:
    """What supabase-js sends, as PostgREST passes it on: ``accept``, ``content-type`` for
    a body, ``apikey`` (the anon or service_role key) and ``authorization: Bearer`` (the
    access token, or the key), both unsigned placeholders; ``headers`` on top."""
    key_role = "service_role" if identity.role == "service_role" else "anon"
    key = token({"iss": "supabase", "ref": platform.project_ref, "role": key_role})
    claims = identity.settings.get(CLAIMS)
    bearer = token(json.loads(claims)) if claims and identity.role not in ("anon", "service_role") else key
    out = {
        "accept": "application/json",
        "apikey": key,
        "authorization": f"Bearer {bearer}",
    }
    if method not in READ_ONLY_METHODS and method != "DELETE":
        out["content-type"] = "application/json"
    out.update({str(name).lower(): str(value) for name, value in headers.items()})
    return out


def search_path(platform: PlatformConfig, method: str, headers: Mapping[str, str]) -> str:
    """The request's schema (Accept-Profile for reads, Content-Profile for writes, else the
    first exposed one), then extra_search_path, each quoted as PostgREST quotes them."""
    profile = headers.get("accept-profile" if method in READ_ONLY_METHODS else "content-profile")
    schemas = platform.api_schemas
    if profile is not None and profile not in schemas:
        raise RlscheckUsageError(
            f"schema {profile!r} (the {'Accept' if method in READ_ONLY_METHODS else 'Content'}-Profile header) is "
            f"not exposed: [api] schemas = {list(schemas)} ({platform.source}); PostgREST answers 406 (PGRST106)"
        )
    schema = profile or (schemas[0] if schemas else "public")
    return ", ".join('"' + name.replace('"', '""') + '"' for name in (schema, *platform.extra_search_path))


def request_identity(
    base: Identity, request: Request, platform: PlatformConfig, settings: RoleSettings
) -> Identity:
    """``base`` (role and claims) as PostgREST would set it for ``request``: the API session's
    settings, search_path, the role's own settings, then the request's."""
    method = request.method.upper()
    headers = request_headers(method, base, platform, request.headers)
    values: dict[str, str] = dict(settings.session)
    values["search_path"] = search_path(platform, method, headers)
    values.update(settings.role)
    values.update(base.settings)
    values["request.method"] = method
    values["request.path"] = postgrest_path(request.path) or ""
    values["request.headers"] = json.dumps(headers)
    values["request.cookies"] = json.dumps({str(k): str(v) for k, v in request.cookies.items()})
    pre = function_name(settings.pre_request) if request.pre_request and settings.pre_request else None
    shown = f"{method} {values['request.path']}" if request.path is not None else method
    return replace(
        base, settings=values, label=f"{base.label}, {shown}" if base.label else shown,
        request=replace(request, method=method, pre_request_function=pre),
    )


def probe_identity(identity: Identity | None) -> Identity | None:
    """``identity`` without the request's timeouts and without its request behaviour, for
    measurements (EXPLAIN ANALYZE) that must not time out or be refused."""
    if identity is None or identity.request is None:
        return identity
    return replace(identity, settings={k: v for k, v in identity.settings.items() if k not in TIMEOUTS}, request=None)


class Api:
    """Runs the statements of API identities on one connection, as requests would run."""

    def __init__(self, conn: psycopg.Connection[Any], *, safeupdate: bool) -> None:
        self._conn = conn
        self.safeupdate = Safeupdate(conn, enabled=safeupdate)
        self._settings: dict[str, RoleSettings] = {}

    def role_settings(self, role: str) -> RoleSettings:
        """pg_db_role_setting for a request as ``role`` (cached until :meth:`forget`)."""
        if role not in self._settings:
            self._settings[role] = read_role_settings(self._conn, role)
        return self._settings[role]

    def forget(self) -> None:
        """The owner may have changed role settings (ALTER ROLE): read them again."""
        self._settings.clear()

    def execute(self, request: Request, query: str | sql.Composable, params: Any) -> psycopg.Cursor[Any]:
        """One statement as one request: read-only if asked, pre-request, safeupdate, the
        statement, then the commit-time checks; all in a savepoint that a failure undoes
        (a read-only one is always undone: that is how the transaction gets out of READ ONLY)."""
        conn = self._conn
        text = query if isinstance(query, str) else query.as_string(conn)
        status = conn.info.transaction_status
        if status == TransactionStatus.IDLE:
            # autocommit (a fresh database): one transaction per request, committed unless read-only
            with conn.transaction(force_rollback=request.read_only):
                return self._run(request, text, query, params, commits=False)
        if status == TransactionStatus.INTRANS and _one_statement(text, params):
            return self._pipelined(request, text, query, params)
        with conn.transaction(force_rollback=request.read_only):
            return self._run(request, text, query, params, commits=True)

    def _run(
        self, request: Request, text: str, query: str | sql.Composable, params: Any, *, commits: bool
    ) -> psycopg.Cursor[Any]:
        conn = self._conn
        self._before(request, text)
        cursor = conn.execute(query, params)
        after = self.safeupdate.after_sql()
        if commits and not request.read_only:
            commit_checks.check(conn, after)  # a real commit follows in autocommit mode
        elif after:
            conn.execute("\n;\n".join(after))
        return cursor

    def _before(self, request: Request, text: str) -> None:
        """What runs ahead of the statement: READ ONLY if asked, the pre-request function,
        safeupdate's setting for this statement."""
        if request.read_only:
            self._conn.execute(READ_ONLY_SQL)
        if request.pre_request_function is not None:
            self._conn.execute(_pre_request_sql(request.pre_request_function))
        self.safeupdate.before(text)

    def _pipelined(self, request: Request, text: str, query: str | sql.Composable, params: Any) -> psycopg.Cursor[Any]:
        """:meth:`_run` inside the test's transaction, savepoint and all, in one round trip
        (psycopg's pipeline mode: one statement per message, so the statement's own syntax
        error cannot stop the savepoint in front). On a failure the server skips the rest;
        rolling back to the savepoint leaves the test's transaction as it was."""
        conn = self._conn
        try:
            with conn.pipeline():
                conn.execute(REQUEST_SAVEPOINT_SQL)
                self._before(request, text)
                cursor = conn.execute(query, params)
                if request.read_only:
                    for statement in self.safeupdate.after_sql():
                        conn.execute(statement)
                else:
                    for statement in (*self.safeupdate.after_sql(), *commit_checks.COMMIT_CHECK):
                        conn.execute(statement)
                for statement in REQUEST_UNDO_SQL if request.read_only else (REQUEST_RELEASE_SQL,):
                    conn.execute(statement)
        except psycopg.Error:
            if not conn.closed and conn.info.transaction_status == TransactionStatus.INERROR:
                conn.execute(";\n".join(REQUEST_UNDO_SQL))
            raise
        return cursor


#: The savepoint each request of a transactional test runs in (pipelined).
REQUEST_SAVEPOINT = "rlscheck_request"
REQUEST_SAVEPOINT_SQL = f"SAVEPOINT {REQUEST_SAVEPOINT}"
REQUEST_RELEASE_SQL = f"RELEASE SAVEPOINT {REQUEST_SAVEPOINT}"
REQUEST_UNDO_SQL = (f"ROLLBACK TO SAVEPOINT {REQUEST_SAVEPOINT}", REQUEST_RELEASE_SQL)


def _pre_request_sql(function: tuple[str | None, str]) -> sql.Composed:
    schema, name = function
    target = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    return sql.SQL("select {}()").format(target)


def _one_statement(text: str, params: Any) -> bool:
    """Whether psycopg sends ``text`` as one statement (pipeline mode takes no more): with
    parameters always; without, when it is one statement (else the simple protocol runs them all)."""
    if params is not None:
        return True
    try:
        return len(split(text)) <= 1
    except SplitError:
        return False
