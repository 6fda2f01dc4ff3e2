"""Catalog introspection: relations, columns, constraints, indexes, policies and functions
as frozen dataclasses, read in bulk — one query per kind, whatever the number of tables."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

__all__ = [
    "Catalog",
    "Dependency",
    "Column",
    "Constraint",
    "Function",
    "Index",
    "Policy",
    "Relation",
    "resolve_relation",
]

#: What a function body reads to learn which end user calls it (not current_user: in a
#: SECURITY DEFINER body that is the owner, and on Supabase session_user is the authenticator).
_CALLER = re.compile(r'\b"?auth"?\s*\.\s*"?(uid|jwt|role|email)"?\s*\(', re.IGNORECASE)
_CLAIMS = re.compile(r"request\.jwt\.claim", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_STRING = re.compile(r"'(?:[^']|'')*'")
_CALL = re.compile(r'(?:"?\w+"?\s*\.\s*)?"?(\w+)"?\s*\(')


def split_top_level(text: str) -> list[str]:
    """``a, f(b, c), 'x,y'`` → ``["a", "f(b, c)", "'x,y'"]``."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        elif not quoted and ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _defaults(inputs: int, count: int | None, expressions: str | None) -> tuple[str | None, ...]:
    """The DEFAULT of each input argument (the last ``count`` have one), or None."""
    found = split_top_level(expressions or "") if count else []
    if len(found) != count:
        return (None,) * inputs  # not what we expected: say nothing rather than something wrong
    return (None,) * (inputs - len(found)) + tuple(found)


def _code(body: str) -> tuple[str, str]:
    """The body without comments: with its string literals, and with them blanked out."""
    text = _COMMENT.sub(" ", body)
    return text, _STRING.sub("''", text)

_SCOPE = "(c.oid = any(%(oids)s::oid[]) or n.nspname = any(%(schemas)s::text[]))"

RELATIONS_SQL = f"""
select c.oid, n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity,
       r.rolname, r.rolsuper or r.rolbypassrls,
       coalesce((select o.option_value::boolean from pg_options_to_table(c.reloptions) o
                 where o.option_name = 'security_invoker'), false),
       coalesce((select o.option_value::boolean from pg_options_to_table(c.reloptions) o
                 where o.option_name = 'security_barrier'), false),
       c.reltuples
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_roles r on r.oid = c.relowner
where c.relkind in ('r', 'p', 'v', 'm', 'f') and {_SCOPE}
order by n.nspname, c.relname
"""

COLUMNS_SQL = f"""
select a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       a.atthasdef, a.attgenerated <> '', a.attidentity <> '', a.attnum,
       pg_get_expr(d.adbin, d.adrelid)
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p', 'v', 'm', 'f') and {_SCOPE}
order by a.attrelid, a.attnum
"""

CONSTRAINTS_SQL = f"""
select k.conrelid, k.conname, k.contype, pg_get_constraintdef(k.oid), k.convalidated,
       array(select a.attname from unnest(k.conkey) with ordinality u(num, i)
             join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.num order by u.i)::text[],
       k.confrelid::regclass::text
from pg_constraint k
join pg_class c on c.oid = k.conrelid
join pg_namespace n on n.oid = c.relnamespace
where {_SCOPE}
order by k.conrelid, k.conname
"""

INDEXES_SQL = f"""
select i.indrelid, x.relname, i.indisunique, i.indisprimary, i.indisvalid, i.indpred is not null,
       pg_get_indexdef(i.indexrelid),
       array(select case when u.num = 0 then null else a.attname end
             from unnest(i.indkey::int2[]) with ordinality u(num, pos)
             left join pg_attribute a on a.attrelid = i.indrelid and a.attnum = u.num
             where u.pos <= i.indnkeyatts order by u.pos)::text[]
from pg_index i
join pg_class x on x.oid = i.indexrelid
join pg_class c on c.oid = i.indrelid
join pg_namespace n on n.oid = c.relnamespace
where {_SCOPE}
order by i.indrelid, x.relname
"""

POLICIES_SQL = f"""
select p.polrelid, p.polname,
       case p.polcmd when 'r' then 'SELECT' when 'a' then 'INSERT' when 'w' then 'UPDATE'
                     when 'd' then 'DELETE' else 'ALL' end,
       p.polpermissive,
       case when p.polroles = '{{0}}' then array['public']
            else array(select rolname from pg_roles where oid = any(p.polroles) order by rolname) end::text[],
       pg_get_expr(p.polqual, p.polrelid),
       pg_get_expr(p.polwithcheck, p.polrelid)
from pg_policy p
join pg_class c on c.oid = p.polrelid
join pg_namespace n on n.oid = c.relnamespace
where {_SCOPE}
order by p.polrelid, p.polname
"""

#: Functions the project wrote: the exposed schemas, and every schema that is neither
#: PostgreSQL's nor managed by Supabase; extension members excluded.
MANAGED_SCHEMAS = (
    "pg_catalog", "information_schema", "auth", "storage", "extensions", "graphql", "graphql_public",
    "realtime", "supabase_functions", "supabase_migrations", "vault", "pgsodium", "pgsodium_masks", "net", "cron",
    "pgbouncer", "pgtle", "tiger", "topology",
)
_USER_FUNCTIONS = f"""(n.nspname = any(%(schemas)s::text[])
  or (n.nspname not like 'pg\\_%%' and n.nspname <> all(array{list(MANAGED_SCHEMAS)})))
  and not exists (select from pg_depend e where e.classid = 'pg_proc'::regclass and e.objid = p.oid and e.deptype = 'e')"""

# The source of an SQL or PL/pgSQL function; a SQL-standard body (BEGIN ATOMIC / RETURN,
# PostgreSQL 14+) is kept parsed, and printed back by pg_get_function_sqlbody.
_BODY = "case when l.lanname in ('sql', 'plpgsql') then p.prosrc else '' end"
_BODY_14 = (
    "case when p.prosqlbody is not null then pg_get_function_sqlbody(p.oid) "
    "when l.lanname in ('sql', 'plpgsql') then p.prosrc else '' end"
)

FUNCTIONS_SQL = f"""
select p.oid, n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
       l.lanname, p.provolatile, p.prosecdef, p.proconfig::text[], p.proretset,
       pg_get_function_result(p.oid), r.rolname, r.rolsuper or r.rolbypassrls,
       array(select format_type(t, null) from unnest(p.proargtypes) t)::text[],
       -- the names of the input arguments: not OUT or TABLE columns
       array(select a.name from unnest(p.proargnames, p.proargmodes) with ordinality a(name, mode, i)
             where coalesce(a.mode, 'i') in ('i', 'b', 'v') order by a.i)::text[],
       {_BODY},
       p.pronargdefaults, pg_get_expr(p.proargdefaults, 0)
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_language l on l.oid = p.prolang
join pg_roles r on r.oid = p.proowner
where p.prokind in ('f', 'p') and {_USER_FUNCTIONS}
order by n.nspname, p.proname, p.oid
"""
FUNCTIONS_SQL_14 = FUNCTIONS_SQL.replace(_BODY, _BODY_14)

# Table privileges, and column privileges (which grant the command on some columns).
RELATION_GRANTS_SQL = f"""
select c.oid, coalesce(r.rolname, 'public'), a.privilege_type
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
cross join lateral aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
left join pg_roles r on r.oid = a.grantee
where c.relkind in ('r', 'p', 'v', 'm', 'f') and {_SCOPE}
union
select c.oid, coalesce(r.rolname, 'public'), a.privilege_type
from pg_attribute t
join pg_class c on c.oid = t.attrelid
join pg_namespace n on n.oid = c.relnamespace
cross join lateral aclexplode(t.attacl) a
left join pg_roles r on r.oid = a.grantee
where t.attacl is not null and t.attnum > 0 and not t.attisdropped and c.relkind in ('r', 'p', 'v', 'm', 'f') and {_SCOPE}
"""

VIEW_DEPENDENCIES_SQL = f"""
select distinct w.ev_class, d.refobjid, rn.nspname || '.' || r.relname, r.relrowsecurity
from pg_rewrite w
join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = w.oid
                and d.refclassid = 'pg_class'::regclass and d.refobjid <> w.ev_class
join pg_class r on r.oid = d.refobjid
join pg_namespace rn on rn.oid = r.relnamespace
join pg_class c on c.oid = w.ev_class
join pg_namespace n on n.oid = c.relnamespace
where {_SCOPE}
"""

FUNCTION_GRANTS_SQL = f"""
select p.oid, coalesce(r.rolname, 'public')
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
cross join lateral aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
left join pg_roles r on r.oid = a.grantee
where a.privilege_type = 'EXECUTE' and p.prokind in ('f', 'p') and {_USER_FUNCTIONS}
"""

RESOLVE_SQL = "select c.oid, n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = to_regclass(%s)"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool
    has_default: bool
    generated: bool
    identity: bool
    position: int
    default: str | None


@dataclass(frozen=True)
class Constraint:
    name: str
    type: str  # c(heck), f(oreign key), p(rimary key), u(nique), x(exclusion), n(ot null, PG ≥ 18)
    definition: str
    validated: bool
    columns: tuple[str, ...]
    references: str | None


@dataclass(frozen=True)
class Index:
    name: str
    unique: bool
    primary: bool
    valid: bool
    partial: bool
    definition: str
    columns: tuple[str | None, ...]  # None for an expression


@dataclass(frozen=True)
class Policy:
    name: str
    command: str  # SELECT, INSERT, UPDATE, DELETE or ALL
    permissive: bool
    roles: tuple[str, ...]  # ("public",) for every role
    using: str | None
    with_check: str | None

    def covers(self, command: str) -> bool:
        return self.command in (command, "ALL")

    def describe(self) -> str:
        kind = "permissive" if self.permissive else "restrictive"
        text = f'"{self.name}" FOR {self.command} TO {", ".join(self.roles)} ({kind})'
        if self.using:
            text += f" USING ({self.using})"
        if self.with_check:
            text += f" WITH CHECK ({self.with_check})"
        return text


@dataclass(frozen=True)
class Dependency:
    """A relation a view reads."""

    oid: int
    qualified: str
    rls_enabled: bool


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str
    kind: str  # r, p, v, m, f
    rls_enabled: bool
    rls_forced: bool
    owner: str
    owner_bypasses_rls: bool
    security_invoker: bool
    security_barrier: bool
    estimated_rows: float
    columns: tuple[Column, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    indexes: tuple[Index, ...] = ()
    policies: tuple[Policy, ...] = ()
    grants: tuple[tuple[str, str], ...] = ()  # (grantee or "public", privilege)
    depends_on: tuple[Dependency, ...] = ()  # for views: the relations they read, in any schema

    def granted(self, role: str, privilege: str) -> bool:
        """Directly granted to ``role`` or to PUBLIC."""
        return any(g in (role, "public") and p == privilege for g, p in self.grants)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def is_view(self) -> bool:
        return self.kind in ("v", "m")

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def primary_key(self) -> tuple[str, ...]:
        return next((c.columns for c in self.constraints if c.type == "p"), ())

    @property
    def unique_keys(self) -> list[tuple[str, ...]]:
        return [c.columns for c in self.constraints if c.type in ("p", "u")] + [
            tuple(col for col in i.columns if col) for i in self.indexes if i.unique and not i.partial
        ]

    def checks(self) -> list[Constraint]:
        return [c for c in self.constraints if c.type == "c"]


@dataclass(frozen=True)
class Function:
    oid: int
    schema: str
    name: str
    arguments: str
    language: str
    volatility: str  # i, s, v
    security_definer: bool
    config: tuple[str, ...]
    returns_set: bool
    result: str
    owner: str
    owner_bypasses_rls: bool
    argument_types: tuple[str, ...]
    argument_names: tuple[str, ...]
    executable_by: tuple[str, ...] = ()  # roles with EXECUTE ("public" for everyone)
    body: str = ""  # the source of an SQL or PL/pgSQL function
    argument_defaults: tuple[str | None, ...] = ()  # per input argument, its DEFAULT expression

    def reads_caller(self) -> bool:
        """Whether the body itself asks who is calling: auth.uid(), auth.jwt(), the claims."""
        text, code = _code(self.body)
        return bool(_CALLER.search(code) or _CLAIMS.search(text))

    def calls(self) -> frozenset[str]:
        """The names (without schema, lower case) of what the body calls."""
        return frozenset(m.group(1).lower() for m in _CALL.finditer(_code(self.body)[1]))

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def signature(self) -> str:
        return f"{self.qualified}({self.arguments})"


@dataclass(frozen=True)
class Catalog:
    relations: tuple[Relation, ...]
    functions: tuple[Function, ...] = ()

    @classmethod
    def load(
        cls,
        conn: psycopg.Connection[Any],
        *,
        oids: Iterable[int] = (),
        schemas: Sequence[str] = (),
        functions: bool = False,
    ) -> Catalog:
        """Read the relations given by ``oids`` and every relation of ``schemas``."""
        scope = {"oids": list(oids), "schemas": list(schemas)}
        by_rel: dict[int, dict[str, list[Any]]] = {}

        def rows(query: str) -> list[tuple[Any, ...]]:
            return conn.execute(query, scope).fetchall()

        relations = rows(RELATIONS_SQL)
        for oid, *rest in rows(COLUMNS_SQL):
            by_rel.setdefault(oid, {}).setdefault("columns", []).append(Column(*rest))
        for oid, name, kind, definition, validated, cols, ref in rows(CONSTRAINTS_SQL):
            by_rel.setdefault(oid, {}).setdefault("constraints", []).append(
                Constraint(name, kind, definition, validated, tuple(cols), ref if kind == "f" else None)
            )
        for oid, name, unique, primary, valid, partial, definition, cols in rows(INDEXES_SQL):
            by_rel.setdefault(oid, {}).setdefault("indexes", []).append(
                Index(name, unique, primary, valid, partial, definition, tuple(cols))
            )
        for oid, name, command, permissive, roles, using, check in rows(POLICIES_SQL):
            by_rel.setdefault(oid, {}).setdefault("policies", []).append(
                Policy(name, command, permissive, tuple(roles), using, check)
            )
        for oid, grantee, privilege in rows(RELATION_GRANTS_SQL):
            by_rel.setdefault(oid, {}).setdefault("grants", []).append((grantee, privilege))
        for oid, referenced, name, rls in rows(VIEW_DEPENDENCIES_SQL):
            by_rel.setdefault(oid, {}).setdefault("depends_on", []).append(Dependency(referenced, name, rls))
        built = tuple(
            Relation(
                *row,
                **{key: tuple(values) for key, values in by_rel.get(row[0], {}).items()},
            )
            for row in relations
        )
        funcs: tuple[Function, ...] = ()
        if functions and schemas:
            executable: dict[int, list[str]] = {}
            for oid, grantee in rows(FUNCTION_GRANTS_SQL):
                executable.setdefault(oid, []).append(grantee)
            funcs = tuple(
                Function(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(r[7] or ()), r[8], r[9], r[10], r[11],
                         tuple(r[12]), tuple(r[13]), tuple(executable.get(r[0], ())), r[14] or "",
                         _defaults(len(r[12]), r[15], r[16]))
                for r in rows(FUNCTIONS_SQL if conn.info.server_version < 140000 else FUNCTIONS_SQL_14)
            )
        return cls(built, funcs)

    def relation(self, oid_or_name: int | str) -> Relation:
        for rel in self.relations:
            if rel.oid == oid_or_name or rel.qualified == oid_or_name:
                return rel
        raise KeyError(oid_or_name)


def resolve_relation(conn: psycopg.Connection[Any], name: str) -> Relation:
    """Look ``name`` up the way SQL would (search_path applies) and load it from the catalog."""
    row = conn.execute(RESOLVE_SQL, [name]).fetchone()
    if row is None:
        path = conn.execute("select current_setting('search_path')").fetchone()
        raise LookupError(f"relation {name!r} does not exist (search_path: {path[0] if path else '?'})")
    return Catalog.load(conn, oids=[row[0]]).relation(row[0])
