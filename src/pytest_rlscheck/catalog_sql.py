"""The catalog queries: one per kind of object, each for every relation in scope at once
(``%(oids)s``: relations by OID, ``%(schemas)s``: every relation of these schemas)."""

from __future__ import annotations

__all__ = [
    "COLUMNS_SQL",
    "CONSTRAINTS_SQL",
    "FUNCTIONS_SQL",
    "FUNCTIONS_SQL_14",
    "FUNCTION_GRANTS_SQL",
    "INDEXES_SQL",
    "MANAGED_SCHEMAS",
    "POLICIES_SQL",
    "RELATIONS_SQL",
    "RELATION_GRANTS_SQL",
    "RESOLVE_SQL",
    "SEARCH_PATH_SQL",
    "TRIGGERS_SQL",
    "VIEW_DEPENDENCIES_SQL",
    "VIEW_QUERIES_SQL",
]

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
       k.confrelid::regclass::text,
       array(select a.attname from unnest(k.confkey) with ordinality u(num, i)
             join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.num order by u.i)::text[],
       nullif(k.confrelid, 0)::int
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
       pg_get_expr(p.polwithcheck, p.polrelid),
       p.polqual::text, p.polwithcheck::text
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

_SQLBODY = "null::text as sqlbody"

FUNCTIONS_SQL = f"""
select p.oid, n.nspname as schema, p.proname as name, pg_get_function_identity_arguments(p.oid) as arguments,
       l.lanname as language, p.provolatile as volatility, p.prosecdef as security_definer,
       p.proconfig::text[] as config, p.proretset as returns_set, pg_get_function_result(p.oid) as result,
       r.rolname as owner, r.rolsuper or r.rolbypassrls as owner_bypasses_rls,
       array(select format_type(t, null) from unnest(p.proargtypes) t)::text[] as argument_types,
       -- the names of the input arguments: not OUT or TABLE columns
       array(select a.name from unnest(p.proargnames, p.proargmodes) with ordinality a(name, mode, i)
             where coalesce(a.mode, 'i') in ('i', 'b', 'v') order by a.i)::text[] as argument_names,
       {_BODY} as body,
       p.proargdefaults::text as argdefaults,
       {_SQLBODY}
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_language l on l.oid = p.prolang
join pg_roles r on r.oid = p.proowner
where p.prokind in ('f', 'p') and {_USER_FUNCTIONS}
order by n.nspname, p.proname, p.oid
"""
FUNCTIONS_SQL_14 = FUNCTIONS_SQL.replace(_BODY, _BODY_14).replace(_SQLBODY, "p.prosqlbody::text as sqlbody")

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

# Triggers (not the internal ones of foreign keys), with what their function runs as.
TRIGGERS_SQL = f"""
select t.tgrelid, t.tgname, t.tgfoid, fn.nspname || '.' || p.proname, p.prosecdef, r.rolname,
       r.rolsuper or r.rolbypassrls, t.tgtype::int, t.tgenabled <> 'D',
       array(select a.attname from unnest(t.tgattr::int2[]) with ordinality u(num, i)
             join pg_attribute a on a.attrelid = t.tgrelid and a.attnum = u.num order by u.i)::text[]
from pg_trigger t
join pg_class c on c.oid = t.tgrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_proc p on p.oid = t.tgfoid
join pg_namespace fn on fn.oid = p.pronamespace
join pg_roles r on r.oid = p.proowner
where not t.tgisinternal and {_SCOPE}
order by t.tgrelid, t.tgname
"""

RESOLVE_SQL = "select c.oid, n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = to_regclass(%s)"


SEARCH_PATH_SQL = "select current_setting('search_path')"

#: A view's query tree (its ``_RETURN`` rule): where each output column comes from.
VIEW_QUERIES_SQL = f"""
select w.ev_class, w.ev_action::text
from pg_rewrite w
join pg_class c on c.oid = w.ev_class
join pg_namespace n on n.oid = c.relnamespace
where w.rulename = '_RETURN' and c.relkind in ('v', 'm') and {_SCOPE}
"""
