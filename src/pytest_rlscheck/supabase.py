"""The Supabase shim: which parts the migrations need, and the SQL that installs them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources

from psycopg import sql

from .errors import MigrationError
from .sqlsplit import tokens

__all__ = ["PARTS", "needed_parts", "shim_failure_hint", "shim_sql"]

#: Parts in installation order; ``core`` (roles, extensions schema, default privileges)
#: comes with any other part.
PARTS = ("core", "auth", "storage", "realtime", "functions")

_OWN_AUTH_SCHEMA = re.compile(r"create\s+schema\s+(?!if\s+not\s+exists)(\"?)auth\1(\s|;|$)", re.I)
def _qualified(schema: str) -> str:
    """``schema.name``, either part quoted or not (``"storage"."buckets"``)."""
    return rf'(?<![\w"])"?{schema}"?\s*\.\s*"?[a-z_]'


_REFERENCES = {
    "core": re.compile(
        r"\b(anon|authenticated|service_role|authenticator|supabase_\w+_admin|supabase_admin|dashboard_user)\b"
        r'|(?<![\w"])"?extensions"?\s*\.',
        re.I,
    ),
    "auth": re.compile(_qualified("auth"), re.I),
    "storage": re.compile(_qualified("storage"), re.I),
    "realtime": re.compile(r"\bsupabase_realtime\b|" + _qualified("realtime"), re.I),
    "functions": re.compile(_qualified("supabase_functions"), re.I),
}


def needed_parts(texts: Iterable[str], forced: bool | None) -> tuple[str, ...]:
    """The shim parts to install: all when forced on, none when forced off, else what the
    SQL references (comments do not count; function bodies and strings do)."""
    if forced is False:
        return ()
    if forced is True:
        return PARTS
    wanted: set[str] = set()
    own_auth = False
    for text in texts:
        code = _code_only(text)
        wanted |= {part for part, pattern in _REFERENCES.items() if pattern.search(code)}
        own_auth = own_auth or bool(_OWN_AUTH_SCHEMA.search(code))
    if own_auth:
        wanted.discard("auth")  # the migrations bring their own auth schema
    if wanted:
        wanted.add("core")
    return tuple(p for p in PARTS if p in wanted)


def _code_only(text: str) -> str:
    """``text`` with comments blanked out (strings and dollar bodies kept)."""
    return "".join(" " if kind in ("comment", "block") else text[start:end] for kind, start, end in tokens(text))


def shim_sql(part: str) -> str:
    return resources.files("pytest_rlscheck").joinpath(f"sql/supabase_{part}.sql").read_text(encoding="utf-8")


def shim_failure_hint(exc: MigrationError, user: str) -> str:
    """What to do when the shim fails: on a DSN server, mostly the role's rights."""
    role = sql.Identifier(user).as_string(None)
    text = str(exc)
    if exc.sqlstate == "42501" and ("admin option" in text or "grant role" in text):
        return (
            f"The role {user} is not a member of the API roles and cannot grant them to itself (tests switch to "
            f"them with SET ROLE, as PostgREST does). As a superuser, run:\n    GRANT anon, authenticated, "
            f"service_role TO {role};"
        )
    if exc.sqlstate == "42501" and "create role" in text:
        return (
            f"The API roles are missing on this server and {user} may not create them. As a superuser, run:\n"
            f"    ALTER ROLE {role} CREATEROLE;\n  or create anon, authenticated, service_role and authenticator "
            f"(NOLOGIN NOINHERIT; service_role BYPASSRLS) and GRANT anon, authenticated, service_role TO {role};"
        )
    return (
        "It creates the roles anon, authenticated, service_role and authenticator when they are missing "
        "(CREATEROLE needed once), the schemas auth/extensions/storage and their grants. Create the roles "
        "beforehand, or turn the shim off with --rlscheck-no-supabase."
    )
