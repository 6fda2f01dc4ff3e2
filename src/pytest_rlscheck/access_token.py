"""The access token's claims as Supabase Auth (GoTrue) issues them, and its custom access
token hook.

A signed-in user's token carries ``iss``, ``sub``, ``aud``, ``exp``, ``iat``, ``email``,
``phone``, ``app_metadata``, ``user_metadata``, ``role``, ``aal``, ``amr``, ``session_id``
and ``is_anonymous``, taken from the user's ``auth.users`` row and the platform's settings
(:class:`~pytest_rlscheck.platform_config.PlatformConfig`). The anon and service_role keys
carry ``iss``, ``ref``, ``role``, ``iat`` and ``exp``.

When ``[auth.hook.custom_access_token]`` names a Postgres function, Auth calls it with
``{"user_id", "claims", "authentication_method"}`` as its own role, ``supabase_auth_admin``,
and signs what the function returns in ``claims`` instead, after checking that the required
claims are still there with their types. :func:`run_hook` does the same on the test's
connection, in a savepoint, and turns each way the sign-in would fail into an
:class:`AccessTokenHookError`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from .errors import AccessTokenHookError
from .platform_config import PlatformConfig

__all__ = [
    "AUTH_ADMIN_ROLE",
    "KEYS_ISSUED_AT",
    "KEY_LIFETIME",
    "REQUIRED_CLAIMS",
    "AccessTokenHookError",
    "AuthUser",
    "check_claims",
    "key_claims",
    "run_hook",
    "user_claims",
]

#: The role Auth connects as, and so the role a ``pg-functions://`` hook runs as.
AUTH_ADMIN_ROLE = "supabase_auth_admin"
#: What Auth puts in the hook's ``authentication_method`` for a sign-in with a password.
AUTHENTICATION_METHOD = "password"
#: The anon and service_role keys are signed once for the project and live for years: here
#: they are "issued" when the run starts and expire ten years later.
KEYS_ISSUED_AT = int(time.time())
KEY_LIFETIME = 10 * 365 * 24 * 3600
#: Auth's statement_timeout for a Postgres hook (``hookspgfunc``'s default: 2 seconds).
HOOK_TIMEOUT = "2s"

#: The claims Auth requires in a hook's output (its minimum viable token schema), and the
#: JSON types of those it types (``is_anonymous`` is required but of any type).
REQUIRED_CLAIMS = ("aud", "exp", "iat", "sub", "email", "phone", "role", "aal", "session_id", "is_anonymous")
CLAIM_TYPES: Mapping[str, tuple[str, ...]] = {
    "aud": ("string", "array"), "exp": ("integer",), "jti": ("string",), "iat": ("integer",), "iss": ("string",),
    "nbf": ("integer",), "sub": ("string",), "email": ("string",), "phone": ("string",),
    "app_metadata": ("object",), "user_metadata": ("object",), "role": ("string",), "aal": ("string",),
    "amr": ("array",), "session_id": ("string",), "client_id": ("string",),
}

# The hook's call, as Auth makes it: its own role and timeout, local to a savepoint. The
# previous values are read in the same row, before set_config replaces them.
#: As Auth's connection runs it: its role, its search_path (``auth``), a 2 s timeout.
HOOK_ENTER_SQL = (
    "select current_setting('role'), current_setting('statement_timeout'), current_setting('search_path'),"
    " set_config('role', %(role)s, true), set_config('statement_timeout', %(timeout)s, true),"
    " set_config('search_path', 'auth', true)"
)
HOOK_CALL_SQL = "select {function}(%(event)s::jsonb)"
HOOK_LEAVE_SQL = (
    "select set_config('search_path', %(search_path)s, true), set_config('statement_timeout', %(timeout)s, true),"
    " set_config('role', %(role)s, true)"
)


@dataclass(frozen=True)
class AuthUser:
    """What a user's ``auth.users`` row puts in their access token."""

    email: str | None = None
    phone: str | None = None
    aud: str | None = None
    role: str | None = None
    is_anonymous: bool = False
    app_metadata: Mapping[str, Any] | None = None
    user_metadata: Mapping[str, Any] | None = None


#: A user with no row in auth.users: what sign-up would have given them.
NO_ROW = AuthUser()
DEFAULT_APP_METADATA: Mapping[str, Any] = {"provider": "email", "providers": ["email"]}


def user_claims(
    sub: str | uuid.UUID,
    *,
    user: AuthUser = NO_ROW,
    platform: PlatformConfig | None = None,
    issued_at: int | None = None,
    session_id: str | uuid.UUID | None = None,
    role: str | None = None,
    email: str | None = None,
) -> dict[str, Any]:
    """The claims Auth signs for ``sub`` (before any hook): ``role`` and ``email`` given
    here win over the row's; ``issued_at`` defaults to now, ``session_id`` to a new one."""
    platform = platform or PlatformConfig()
    iat = int(time.time()) if issued_at is None else int(issued_at)
    return {
        "iss": platform.issuer,
        "sub": str(sub),
        "aud": user.aud or "authenticated",
        "exp": iat + platform.jwt_expiry,
        "iat": iat,
        "email": email or user.email or "",
        "phone": user.phone or "",
        "app_metadata": dict(DEFAULT_APP_METADATA if user.app_metadata is None else user.app_metadata),
        "user_metadata": dict(user.user_metadata or {}),
        "role": role or user.role or "authenticated",
        "aal": "aal1",
        "amr": [{"method": AUTHENTICATION_METHOD, "timestamp": iat}],
        "session_id": str(session_id or uuid.uuid4()),
        "is_anonymous": bool(user.is_anonymous),
    }


def key_claims(role: str, platform: PlatformConfig | None = None) -> dict[str, Any]:
    """The claims of the project's anon or service_role key."""
    platform = platform or PlatformConfig()
    return {"iss": "supabase", "ref": platform.project_ref, "role": role,
            "iat": KEYS_ISSUED_AT, "exp": KEYS_ISSUED_AT + KEY_LIFETIME}


def run_hook(
    conn: psycopg.Connection[Any], hook: tuple[str, str], user_id: str, claims: Mapping[str, Any]
) -> dict[str, Any]:
    """The claims the hook ``(schema, function)`` returns for ``claims``, called as Auth
    calls it; raises :class:`AccessTokenHookError` where Auth would refuse the sign-in.
    The caller acts as the connection's own role, inside the test's transaction (or none)."""
    __tracebackhide__ = True  # the error is the report: no frames of the plugin
    schema, function = hook
    name = f"{schema}.{function}"
    event = {"user_id": user_id, "claims": dict(claims), "authentication_method": AUTHENTICATION_METHOD}
    call = sql.SQL(HOOK_CALL_SQL).format(function=sql.Identifier(schema, function))
    try:
        with conn.transaction():  # a savepoint in the test's transaction; a transaction outside one
            row = conn.execute(HOOK_ENTER_SQL, {"role": AUTH_ADMIN_ROLE, "timeout": HOOK_TIMEOUT}).fetchone()
            assert row is not None
            previous_role, previous_timeout, previous_path = row[0], row[1], row[2]
            result = conn.execute(call, {"event": json.dumps(event)}).fetchone()
            conn.execute(HOOK_LEAVE_SQL, {"role": previous_role, "timeout": previous_timeout,
                                          "search_path": previous_path})
    except psycopg.Error as exc:
        if conn.broken or conn.closed:  # the server is gone: not the hook's doing
            raise
        raise _failed(name, exc) from None  # a timeout (QueryCanceled) included
    output = result[0] if result else None
    if isinstance(output, str):  # a function returning text or json as text
        try:
            output = json.loads(output)
        except ValueError:
            pass
    return _claims_of(name, output)


def _failed(name: str, exc: psycopg.Error) -> AccessTokenHookError:
    state = exc.sqlstate or ""
    message = (exc.diag.message_primary or str(exc)).strip()
    where = [f"PostgreSQL said: ERROR {state}: {message}"] if state else [f"PostgreSQL said: {message}"]
    if exc.diag.context:
        where.append(f"  {exc.diag.context.strip()}")
    schema = name.split(".", 1)[0]
    if "set role" in message or (state == "22023" and AUTH_ADMIN_ROLE in message):
        fix = (f"the role the tests connect as must be able to act as {AUTH_ADMIN_ROLE} (a superuser, or "
               f"grant {AUTH_ADMIN_ROLE} to it), and the Supabase shim must have created that role")
    elif state == "42501" and "function" in message:
        fix = (f"grant execute on function {name}(jsonb) to {AUTH_ADMIN_ROLE}; (Auth runs the hook as "
               f"{AUTH_ADMIN_ROLE}, which may not call it without that grant)")
    elif state == "42501" and "schema" in message:
        fix = f"grant usage on schema {schema} to {AUTH_ADMIN_ROLE};"
    elif state == "42501":
        fix = (f"grant {AUTH_ADMIN_ROLE} what the hook reads (e.g. grant select on the table to "
               f"{AUTH_ADMIN_ROLE}, and a policy for it if RLS is on)")
    elif state in ("42883", "3F000"):
        fix = (f"create the function {name}(event jsonb) returns jsonb in a migration, or correct the uri "
               "in supabase/config.toml")
    elif state == "57014":
        fix = f"Auth cancels a hook after {HOOK_TIMEOUT}: make it faster"
    else:
        fix = "the hook must not raise: return {\"error\": {\"http_code\": 4xx, \"message\": ...}} to refuse a sign-in"
    return AccessTokenHookError(name, f"failed as {AUTH_ADMIN_ROLE}", 500, fix, tuple(where))


def _claims_of(name: str, output: Any) -> dict[str, Any]:
    """The claims of the hook's ``output``, or the error Auth answers with."""
    __tracebackhide__ = True
    if not isinstance(output, dict):
        return _raise(name, f"returned {_shown(output)}, not a JSON object with a claims object", 500,
                      "return jsonb_build_object('claims', claims), e.g. jsonb_set(event, ...) of the event")
    error = output.get("error")
    if isinstance(error, dict) and error.get("message"):  # Auth: an error without a message is none
        code = error.get("http_code")
        status = code if isinstance(code, int) and not isinstance(code, bool) and code else 500
        raise AccessTokenHookError(
            name, f"refused the sign-in: {error['message']}", status,
            details=(f"The hook returned {json.dumps({'error': error}, default=str)}.",),
        )
    if "claims" not in output:
        return _raise(name, "returned an object without claims (Auth: \"output claims field is missing\")", 500,
                      "return the event's claims, changed: {\"claims\": {...}}")
    claims = output["claims"]
    if not isinstance(claims, dict):
        return _raise(name, f"returned claims that are {_shown(claims)}, not an object", 500,
                      "return {\"claims\": {...}}")
    problems = check_claims(claims)
    if problems:
        raise AccessTokenHookError(
            name, "returned claims that do not conform to Auth's token schema", 500,
            f"keep {', '.join(REQUIRED_CLAIMS)} in the claims with their types; add or change the others",
            tuple(f"- {p}" for p in problems),
        )
    return claims


def _raise(name: str, problem: str, status: int, fix: str) -> dict[str, Any]:
    __tracebackhide__ = True
    raise AccessTokenHookError(name, problem, status, fix)


def check_claims(claims: Mapping[str, Any]) -> list[str]:
    """What Auth's schema for a hook's output claims finds wrong with ``claims`` (none: [])."""
    problems = [f"{name}: is required" for name in REQUIRED_CLAIMS if name not in claims]
    for name, types in CLAIM_TYPES.items():
        if name in claims and _json_type(claims[name]) not in types and not (
            "integer" in types and _json_type(claims[name]) == "number" and float(claims[name]).is_integer()
        ):
            problems.append(f"{name}: must be {' or '.join(types)}, got {_json_type(claims[name])}")
    amr = claims.get("amr")
    if isinstance(amr, list):
        problems += [f"amr.{i}: must be string or object" for i, item in enumerate(amr)
                     if not isinstance(item, (str, dict))]
    return problems


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _shown(value: Any) -> str:
    return "null (nothing)" if value is None else f"a JSON {_json_type(value)} ({json.dumps(value, default=str)[:80]})"
