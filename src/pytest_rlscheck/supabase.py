"""The Supabase shim: which parts the migrations need, and the SQL that installs them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources

from psycopg import sql

from .errors import MigrationError
from .sqlsplit import code_only

__all__ = [
    "NO_API_GRANTS_SQL",
    "PARTS",
    "PART_SCHEMAS",
    "created_objects",
    "needed_parts",
    "shim_failure_hint",
    "shim_sql",
]

#: Parts in installation order; ``core`` (roles, extensions schema, default privileges)
#: comes with any other part.
PARTS = ("core", "auth", "storage", "realtime", "functions")

#: The schema each part creates. When the sources create it themselves (a dump of a
#: Supabase database has ``CREATE SCHEMA auth``, ``storage``...), the part is not installed:
#: their own objects stand, and the shim's ``create schema if not exists`` would make their
#: ``CREATE SCHEMA`` fail.
PART_SCHEMAS = {"auth": "auth", "storage": "storage", "realtime": "realtime", "functions": "supabase_functions"}

#: ``CREATE SCHEMA name`` without IF NOT EXISTS (the form that fails when the schema exists).
_CREATE_SCHEMA = re.compile(
    r'(?<![\w"])create\s+schema\s+(?!if\s+not\s+exists\b)(?:"((?:[^"]|"")+)"|([a-z_][\w$]*))', re.I
)
_CREATE_PUBLICATION = re.compile(r'(?<![\w"])create\s+publication\s+(?:"((?:[^"]|"")+)"|([a-z_][\w$]*))', re.I)


def _qualified(schema: str) -> str:
    """``schema.name``, either part quoted or not (``"storage"."buckets"``)."""
    return rf'(?<![\w"])"?{schema}"?\s*\.\s*"?[a-z_]'


_REFERENCES = {
    "core": re.compile(
        r"\b(anon|authenticated|service_role|authenticator|supabase_\w+_admin|supabase_admin|dashboard_user)\b"
        r'|(?<![\w"])"?extensions"?\s*\.'
        r'|\bschema\s+"?extensions"?(?![\w"])',  # create extension ... with schema extensions
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
    created: set[str] = set()
    for text in texts:
        code = code_only(text)
        wanted |= {part for part, pattern in _REFERENCES.items() if pattern.search(code)}
        created |= _created(code)
    # the sources bring their own schema of that part (a dump of a Supabase database)
    wanted -= {part for part, schema in PART_SCHEMAS.items() if f"schema {schema}" in created}
    if wanted:
        wanted.add("core")
    return tuple(p for p in PARTS if p in wanted)


def created_objects(texts: Iterable[str]) -> frozenset[str]:
    """What the sources create that fails when it exists already: ``"schema <name>"`` for
    each ``CREATE SCHEMA`` without IF NOT EXISTS, ``"publication <name>"`` for each
    ``CREATE PUBLICATION`` (comments do not count)."""
    found: set[str] = set()
    for text in texts:
        found |= _created(code_only(text))
    return frozenset(found)


def _created(code: str) -> set[str]:
    found = set()
    for kind, pattern in (("schema", _CREATE_SCHEMA), ("publication", _CREATE_PUBLICATION)):
        for m in pattern.finditer(code):
            name = m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2).lower()
            found.add(f"{kind} {name}")
    return found



#: ``[api] auto_expose_new_tables = false`` in config.toml: what ``supabase db reset`` then
#: runs (and what Studio runs for a new project with "default privileges for new entities"
#: off): what postgres creates in ``public`` gets no rights for the API roles, which need a
#: GRANT of its own. (EXECUTE on functions stays with PUBLIC, as PostgreSQL gives it.)
NO_API_GRANTS_SQL = """\
do $shim$
begin
  if to_regrole('postgres') is null then
    return;
  end if;
  alter default privileges for role postgres in schema public
    revoke select, insert, update, delete on tables from anon, authenticated, service_role;
  alter default privileges for role postgres in schema public
    revoke usage, select on sequences from anon, authenticated, service_role;
  alter default privileges for role postgres in schema public
    revoke execute on functions from anon, authenticated, service_role;
end
$shim$;
"""


_SECTION = re.compile(r"^-- rlscheck:unless (.+?)[ \t]*\n(.*?)^-- rlscheck:end[ \t]*(?:\n|\Z)", re.M | re.S)


def shim_sql(part: str, owned: Iterable[str] = ()) -> str:
    """The part's SQL, without the sections (``-- rlscheck:unless <object>`` ...
    ``-- rlscheck:end``) for objects the sources create themselves (``owned``, from
    :func:`created_objects`). The marker lines stay, as comments, and the line count holds."""
    text = resources.files("pytest_rlscheck").joinpath(f"sql/supabase_{part}.sql").read_text(encoding="utf-8")
    owned = frozenset(owned)

    def section(m: re.Match[str]) -> str:
        if m.group(1) not in owned:
            return m.group(0)
        blank = "".join(f"-- (left out: the sources bring their own {m.group(1)})\n" if i == 0 else "\n"
                        for i in range(m.group(2).count("\n")))
        return f"-- rlscheck:unless {m.group(1)}\n{blank}-- rlscheck:end\n"

    return _SECTION.sub(section, text)


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
