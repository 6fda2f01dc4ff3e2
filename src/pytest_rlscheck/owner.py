"""The project's own role, as Supabase makes it: ``postgres`` without superuser, and what
the platform's supautils extension still lets it do as the superuser.

On Supabase, migrations, seeds and the SQL editor run as ``postgres``: NOSUPERUSER
CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS, with grants on the platform's schemas but
owning none of their tables (``auth.*`` are ``supabase_auth_admin``'s, ``storage.*``
``supabase_storage_admin``'s). supautils, loaded by every session there, runs a few kinds
of statement for it as the superuser: creating (altering, dropping) the extensions the
platform allows, policies on and triggers dropped from the platform's own tables, and
publications, event triggers and foreign-data wrappers. Everything else ``postgres`` may or
may not do as PostgreSQL decides: ``alter table storage.objects ...`` and ``create index on
auth.users`` fail there, and so they fail here.

The lists below are facts of the platform's configuration (supabase/postgres, the
``supautils.conf`` it ships), written down here.
"""

from __future__ import annotations

import re

from psycopg import sql

from .sqlsplit import code_only

__all__ = [
    "OWNER_ATTRIBUTES",
    "PRIVILEGED_EXTENSIONS",
    "PLATFORM_TABLES",
    "elevated",
    "owner_role_sql",
    "refusal_sql",
    "supautils_plan",
    "supautils_refusal",
]

#: ``postgres`` on Supabase (the attributes its "demote postgres" migration leaves).
OWNER_ATTRIBUTES = "NOSUPERUSER CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS"
#: Without the Supabase shim the project is plain PostgreSQL: its ``postgres`` is a superuser.
PLAIN_OWNER_ATTRIBUTES = "SUPERUSER CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS"

#: ``supautils.privileged_extensions``: created, altered and dropped as the superuser when
#: ``postgres`` asks (the extension's objects are then the superuser's).
PRIVILEGED_EXTENSIONS = frozenset("""
address_standardizer address_standardizer_data_us autoinc bloom btree_gin btree_gist citext cube dblink
dict_int dict_xsyn earthdistance fuzzystrmatch hstore http hypopg index_advisor insert_username intarray isn
ltree moddatetime orioledb pg_cron pg_graphql pg_hashids pg_jsonschema pg_net pg_partman pg_repack
pg_stat_monitor pg_stat_statements pg_tle pg_trgm pg_walinspect pgaudit pgcrypto pgjwt pg_prewarm pgmq
pgroonga pgroonga_database pgrouting pgrowlocks pgstattuple pgsodium pgtap plcoffee pljava plls plpgsql
plpgsql_check plv8 postgis postgis_raster postgis_sfcgal postgis_tiger_geocoder postgis_topology
postgres_fdw refint rum seg sslinfo supabase_vault supautils tablefunc tcn timescaledb tsm_system_rows
tsm_system_time unaccent uuid-ossp vector wrappers
""".split())

#: ``supautils.policy_grants`` and ``supautils.drop_trigger_grants`` for ``postgres``: the
#: platform's tables it may create, alter and drop policies on, and drop triggers from.
PLATFORM_TABLES = frozenset("""
auth.audit_log_entries auth.identities auth.refresh_tokens auth.sessions auth.users realtime.messages
storage.buckets storage.migrations storage.objects storage.s3_multipart_uploads
storage.s3_multipart_uploads_parts
""".split())

#: ``supautils.privileged_role_allowed_configs``: settings ``postgres`` may set (``SET``,
#: ``ALTER ROLE ... SET``) though only a superuser could; ``*`` ends a prefix.
ALLOWED_CONFIGS = (
    "auto_explain.log_min_duration", "auto_explain.log_nested_statements", "log_lock_waits", "log_min_messages",
    "pg_net.batch_size", "pg_net.ttl", "pgaudit.log", "pgaudit.log_catalog", "pgaudit.log_client",
    "pgaudit.log_level", "pgaudit.log_relation", "pgaudit.log_rows", "pgaudit.log_statement",
    "pgaudit.log_statement_once", "pgaudit.role", "pgrst.*", "plan_filter.*", "safeupdate.enabled",
    "session_replication_role", "track_io_timing",
)

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_QUALIFIED = rf"({_NAME}(?:\s*\.\s*{_NAME})?)"
_EXTENSION = re.compile(
    rf"\A\s*(?:create|alter|drop)\s+extension\s+(?:if\s+(?:not\s+)?exists\s+)?({_NAME})", re.I
)
_POLICY = re.compile(rf"\A\s*(?:create|alter|drop)\s+policy\s+(?:if\s+exists\s+)?{_NAME}\s+on\s+{_QUALIFIED}", re.I)
_DROP_TRIGGER = re.compile(rf"\A\s*drop\s+trigger\s+(?:if\s+exists\s+)?{_NAME}\s+on\s+{_QUALIFIED}", re.I)
#: What supautils' privileged role may create, whoever owns the rest.
_PRIVILEGED_OBJECTS = re.compile(
    r"\A\s*(?:create|alter|drop)\s+(?:publication|event\s+trigger|foreign\s+data\s+wrapper)\b", re.I
)


_SETTING = r'("?[A-Za-z_][\w$]*"?(?:\s*\.\s*"?[A-Za-z_][\w$]*"?)?)'
_SET = re.compile(rf"\A\s*(?:set|reset)\s+(?:session\s+|local\s+)?{_SETTING}", re.I)
_ALTER_ROLE_SET = re.compile(
    rf"\A\s*alter\s+(?:role|user)\s+({_NAME})\s+(?:in\s+database\s+{_NAME}\s+)?(?:set|reset)\s+{_SETTING}", re.I
)
#: ``supautils.reserved_roles`` marked ``*``: roles whose settings ``postgres`` may change
#: (``alter role anon set statement_timeout = '5s'``, also where PostgreSQL 16+ would want
#: ADMIN on the role).
SETTINGS_OF_RESERVED_ROLES = frozenset({"anon", "authenticated", "service_role", "authenticator"})


def _allowed_config(name: str) -> bool:
    name = re.sub(r'\s|"', "", name).lower()
    return any(name == c or (c.endswith("*") and name.startswith(c[:-1])) for c in ALLOWED_CONFIGS)


def _unquoted(name: str) -> str:
    name = name.strip()
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


def _qualified(text: str) -> str:
    parts = [_unquoted(p) for p in re.findall(_NAME, text)]
    return ".".join(parts) if len(parts) > 1 else f"public.{parts[0]}"


#: What Supabase runs as the superuser after creating some of them (its extension custom
#: scripts), for ``postgres`` to use them. pgmq: its schema's rights, as Supabase's Queues
#: give them (the platform's scripts have none for it; this is what its dashboard grants).
AFTER_CREATE = {
    "pg_cron": (
        "grant usage on schema cron to postgres with grant option",
        "grant all on all functions in schema cron to postgres with grant option",
        "grant all privileges on all tables in schema cron to postgres with grant option",
        "revoke all on table cron.job from postgres",
        "grant select on table cron.job to postgres with grant option",
    ),
    "pgmq": (
        "grant usage, create on schema pgmq to postgres with grant option",
        "grant all on all tables in schema pgmq to postgres with grant option",
        "grant all on all sequences in schema pgmq to postgres with grant option",
        "grant all on all routines in schema pgmq to postgres with grant option",
    ),
}


def elevated(statement: str) -> bool:
    """Whether supautils runs ``statement`` for ``postgres`` as the superuser."""
    return supautils_plan(statement) is not None


def supautils_plan(statement: str) -> tuple[str, ...] | None:
    """None when ``statement`` runs as ``postgres``; else it runs as the superuser, followed
    by these statements (an extension's custom script), also as the superuser."""
    code = code_only(statement).lstrip()
    found = _EXTENSION.match(code)
    if found:
        name = _unquoted(found.group(1))
        if name not in PRIVILEGED_EXTENSIONS:
            return None
        return AFTER_CREATE.get(name, ()) if code[:6].lower() == "create" else ()
    found = _POLICY.match(code) or _DROP_TRIGGER.match(code)
    if found:
        return () if _qualified(found.group(1)) in PLATFORM_TABLES else None
    found = _ALTER_ROLE_SET.match(code)
    if found:
        role, setting = _unquoted(found.group(1)), found.group(2)
        if role in ("current_user", "current_role", "session_user"):
            return None  # postgres's own settings: as the superuser they would be its
        return () if role in SETTINGS_OF_RESERVED_ROLES or _allowed_config(setting) else None
    found = _SET.match(code)
    if found:
        return () if _allowed_config(found.group(1)) else None
    return () if _PRIVILEGED_OBJECTS.match(code) else None


#: ``supautils.reserved_roles``: the platform's roles, which ``postgres`` may not alter,
#: drop or rename (its CREATEROLE notwithstanding); those in
#: :data:`SETTINGS_OF_RESERVED_ROLES` it may give settings.
RESERVED_ROLES = frozenset({
    "supabase_admin", "supabase_auth_admin", "supabase_storage_admin", "supabase_read_only_user",
    "supabase_replication_admin", "dashboard_user", "pgbouncer", *SETTINGS_OF_RESERVED_ROLES,
})
#: ``supautils.reserved_memberships``: roles only a superuser may grant.
RESERVED_MEMBERSHIPS = frozenset({"pg_read_server_files", "pg_write_server_files", "pg_execute_server_program",
                                  "authenticator"})
_ALTER_ROLE = re.compile(rf"\A\s*alter\s+(?:role|user|group)\s+({_NAME})", re.I)
_DROP_ROLES = re.compile(r"\A\s*drop\s+(?:role|user)\s+(?:if\s+exists\s+)?(.*)\Z", re.I | re.S)
_GRANT_ROLES = re.compile(r"\A\s*grant\s+(?!.*\bon\b)(.*?)\s+to\s+", re.I | re.S)
RESERVED_ROLE_MESSAGE = '"{}" is a reserved role, only superusers can modify it'
RESERVED_MEMBERSHIP_MESSAGE = '"{}" role memberships are reserved, only superusers can grant them'


def supautils_refusal(statement: str) -> str | None:
    """supautils' message when it refuses ``statement`` from ``postgres`` (altering,
    renaming or dropping one of the platform's roles, granting a reserved membership), else
    None: PostgreSQL alone decides the rest."""
    code = code_only(statement).strip().rstrip(";")
    found = _ALTER_ROLE_SET.match(code)
    if found and _unquoted(found.group(1)) in SETTINGS_OF_RESERVED_ROLES:
        return None  # their settings are postgres's to change
    found = _ALTER_ROLE.match(code)
    if found and _unquoted(found.group(1)) in RESERVED_ROLES:
        return RESERVED_ROLE_MESSAGE.format(_unquoted(found.group(1)))
    found = _DROP_ROLES.match(code)
    if found:
        for name in re.findall(_NAME, found.group(1)):
            if _unquoted(name) in RESERVED_ROLES:
                return RESERVED_ROLE_MESSAGE.format(_unquoted(name))
    found = _GRANT_ROLES.match(code)
    if found:
        for name in re.findall(_NAME, found.group(1)):
            if _unquoted(name) in RESERVED_MEMBERSHIPS:
                return RESERVED_MEMBERSHIP_MESSAGE.format(_unquoted(name))
    return None


def refusal_sql(message: str) -> sql.Composed:
    """A statement the server runs in place of a refused one: it raises ``message`` (42501),
    as supautils does, so the error is PostgreSQL's and is reported where the statement is."""
    return sql.SQL(
        "do $supautils$ begin raise exception using errcode = '42501', message = {}; end $supautils$"
    ).format(sql.Literal(message))


def owner_role_sql(role: str, database: str, *, supabase: bool) -> sql.Composed:
    """The project's role on the throw-away server: created (it can log in only through
    the run's superuser session, which acts as it), given the attributes Supabase gives it
    (or a superuser's, for a plain PostgreSQL project), and made the database's owner (as
    Supabase's databases are ``postgres``'s, and the ``public`` schema with them)."""
    attributes = OWNER_ATTRIBUTES if supabase else PLAIN_OWNER_ATTRIBUTES
    ident = sql.Identifier(role)
    return sql.SQL(
        "do $owner$ begin if to_regrole({name}) is null then create role {role}; end if; end $owner$;\n"
        "alter role {role} {attributes};\n"
        "alter database {database} owner to {role};\n"
    ).format(name=sql.Literal(role), role=ident, attributes=sql.SQL(attributes), database=sql.Identifier(database))
