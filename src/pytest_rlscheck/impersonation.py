"""Acting as a user the way PostgREST does: a role and JWT claims, set per transaction.

PostgREST runs ``set_config('role', <role>, true)`` and
``set_config('request.jwt.claims', <claims json>, true)`` at the start of each request's
transaction. :class:`IdentityStack` does the same on a test connection and undoes it in
reverse order, so nested blocks and exceptions restore the previous identity exactly.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from .access_token import key_claims
from .platform_config import PlatformConfig
from .savepoints import bind, guarded

__all__ = [
    "OWNER",
    "Identity",
    "IdentityStack",
    "Principal",
    "anon_identity",
    "claims_identity",
    "role_identity",
    "service_role_identity",
]

CLAIMS = "request.jwt.claims"

# One round trip each way. Within a row the target list is evaluated left to right, so the
# old value is read before set_config replaces it.
PUSH_SQL = (
    "select s.name, current_setting(s.name, true), set_config(s.name, s.value, %(local)s)"
    " from unnest(%(names)s::text[], %(values)s::text[]) as s(name, value)"
)
NO_TIMEOUT_SQL = "select set_config('statement_timeout', '0', %(local)s)"
POP_SQL = (
    "select set_config(s.name, coalesce(s.value, ''), %(local)s)"
    " from unnest(%(names)s::text[], %(values)s::text[]) as s(name, value)"
)


@dataclass(frozen=True)
class Principal:
    """A user of the app for the isolation checks: who they are and which tenant is theirs."""

    sub: str
    tenant: str | None = None
    role: str = "authenticated"
    claims: Mapping[str, Any] | None = None
    email: str | None = None

    def __str__(self) -> str:
        return f"user {self.sub}" + (f" (tenant {self.tenant})" if self.tenant else "")


@dataclass(frozen=True)
class Identity:
    """Who the connection acts as: a database role plus settings (the JWT claims among them)."""

    role: str
    settings: Mapping[str, str] = field(default_factory=dict)
    label: str = ""
    #: How the statements run while this identity is in effect, when it stands for an API
    #: request (:class:`pytest_rlscheck.request.Request`); None for a plain role switch.
    request: Any = field(default=None, compare=False)

    @property
    def claims(self) -> dict[str, Any]:
        raw = self.settings.get(CLAIMS)
        return json.loads(raw) if raw else {}

    def assignments(self) -> tuple[list[str], list[str | None]]:
        names = ["role", *self.settings]
        return names, [self.role, *self.settings.values()]


#: The connection's own role (``SET ROLE NONE``), with no claims.
OWNER = Identity("none", {}, "the table owner")


def claims_identity(payload: Mapping[str, Any], label: str) -> Identity:
    """Acting with a token of these claims: PostgREST's role is the token's ``role``."""
    role = str(payload.get("role") or "authenticated")
    return Identity(role, {CLAIMS: json.dumps(payload)}, f"{label} (role {role})")


def anon_identity(platform: PlatformConfig | None = None) -> Identity:
    """A request with the anon key: role ``anon``, no ``sub``."""
    return Identity("anon", {CLAIMS: json.dumps(key_claims("anon", platform))}, "anon")


def service_role_identity(platform: PlatformConfig | None = None) -> Identity:
    """A request with the service_role key: bypasses RLS, as on Supabase."""
    return Identity("service_role", {CLAIMS: json.dumps(key_claims("service_role", platform))}, "service_role")


def role_identity(role: str, settings: Mapping[str, Any] | None = None) -> Identity:
    """Any role with any settings, for apps that scope by e.g. ``app.current_tenant``."""
    values = {name: _setting_text(value) for name, value in (settings or {}).items()}
    return Identity(role, values, f"role {role} with {values}" if values else f"role {role}")


def _setting_text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: Per connection, the (role, setting names) pushes that succeeded there: later pushes of
#: them need no savepoint (the first one of a role that does not exist must not abort).
_PROVEN: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[tuple[str, tuple[str, ...]]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass
class _Frame:
    identity: Identity
    names: list[str]
    previous: list[str | None]


class IdentityStack:
    """Identities pushed on one connection; ``local`` settings end with the transaction."""

    def __init__(self, conn: psycopg.Connection[Any], *, local: bool) -> None:
        self._conn = conn
        self._local = local
        self._frames: list[_Frame] = []

    @property
    def current(self) -> Identity | None:
        return self._frames[-1].identity if self._frames else None

    def names_in_effect(self) -> set[str]:
        """Settings the stacked identities set (besides the role)."""
        return {name for frame in self._frames for name in frame.names if name != "role"}

    def push(self, identity: Identity) -> None:
        names, values = identity.assignments()
        # settings an outer identity set, that this one does not: reset them, as a new
        # request would have them (restored with the rest on pop). NULL resets a setting to
        # its session default: '' for a custom one, the server's value for statement_timeout.
        stale = sorted(self.names_in_effect() - set(names))
        names, values = names + stale, values + [None] * len(stale)
        params = {"names": names, "values": values, "local": self._local}
        proven = _PROVEN.setdefault(self._conn, set())
        key = (identity.role, tuple(sorted(names)))
        if key in proven:  # this role and these settings were set on this connection before
            rows = self._conn.execute(PUSH_SQL, params).fetchall()
        else:  # in a savepoint of its own: a role that does not exist must not abort the test
            rows = guarded(self._conn, [bind(self._conn, PUSH_SQL, params)])[0].rows or []
            proven.add(key)
        self._frames.append(_Frame(identity, [name for name, _, _ in rows], [previous for _, previous, _ in rows]))

    def pop(self) -> None:
        frame = self._frames.pop()
        if self._conn.closed or self._conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            return  # the transaction is lost anyway; its local settings go with it
        # reverse order: the role last, so that settings are restored with the same rights
        # (the values were in effect a moment ago: restoring them cannot fail)
        params = {"names": frame.names[::-1], "values": frame.previous[::-1], "local": self._local}
        if "statement_timeout" not in frame.names:
            self._conn.execute(POP_SQL, params)
            return
        # The role's statement_timeout (anon's 3s, or 1ms) must not cancel the restore itself:
        # lifted first, in the same round trip, then restored with the rest.
        with self._conn.pipeline():
            self._conn.execute(NO_TIMEOUT_SQL, {"local": self._local})
            self._conn.execute(POP_SQL, params)

    def forget(self) -> None:
        """The transaction ended (rolled back): nothing is in effect any more."""
        self._frames.clear()
