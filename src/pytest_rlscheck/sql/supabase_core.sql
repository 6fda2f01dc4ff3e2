-- rlscheck Supabase shim: roles, the extensions schema and the default privileges that a
-- Supabase project gives its API roles (supabase/postgres migrations/db/init-scripts).
-- Roles are cluster-wide: created only when missing, never altered.
-- The sections between "-- rlscheck:unless <object>" and "-- rlscheck:end" are left out when
-- the sources create that object themselves (a dump of a Supabase database creates the
-- extensions schema, its extensions and its grants).

do $shim$
declare
  r record;
  attributes text;
begin
  for r in
    select * from (values
      -- the API roles inherit what is granted to them (Supabase altered them so in 2023)
      ('anon', 'nologin inherit'),
      ('authenticated', 'nologin inherit'),
      ('service_role', 'nologin inherit bypassrls'),
      ('authenticator', 'login noinherit'),
      -- Supabase's own service roles, which migrations grant to (auth hooks, storage,
      -- dashboards); no privileges come with them here
      ('supabase_admin', 'nologin'),
      ('supabase_auth_admin', 'nologin noinherit'),
      ('supabase_storage_admin', 'nologin noinherit'),
      ('supabase_realtime_admin', 'nologin noinherit'),
      ('supabase_functions_admin', 'nologin noinherit'),
      ('dashboard_user', 'nologin'),
      -- and those a dump of a Supabase database grants to or makes owners
      ('pgbouncer', 'nologin'),
      ('supabase_replication_admin', 'nologin'),
      ('supabase_read_only_user', 'nologin')
    ) as roles(name, attributes)
  loop
    if not exists (select from pg_catalog.pg_roles where rolname = r.name) then
      -- On Supabase supabase_admin is the superuser that owns the platform's objects, and
      -- dumps give it event triggers, which only a superuser may own. A superuser running the
      -- shim creates it so (it cannot log in); anyone else, as a plain role.
      attributes := r.attributes;
      if r.name = 'supabase_admin' and (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
        attributes := attributes || ' superuser';
      end if;
      execute format('create role %I %s', r.name, attributes);
    end if;
  end loop;
  -- PostgREST logs in as authenticator and switches to one of these per request.
  for r in select unnest(array['anon', 'authenticated', 'service_role']) as name loop
    if not pg_catalog.pg_has_role('authenticator', r.name, 'MEMBER') then
      execute format('grant %I to authenticator', r.name);
    end if;
    -- The connection the tests run on switches role the same way (a superuser may anyway).
    if not pg_catalog.pg_has_role(current_user, r.name, 'MEMBER')
       and not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
      execute format('grant %I to %I', r.name, current_user);
    end if;
    -- Supabase's postgres is a member of the three, too.
    if to_regrole('postgres') is not null and not pg_catalog.pg_has_role('postgres', r.name, 'MEMBER')
       and current_user <> 'postgres' then
      execute format('grant %I to postgres', r.name);
    end if;
  end loop;
end
$shim$;

-- rlscheck:unless schema extensions
create schema if not exists extensions;

-- Supabase pre-installs these two; a server built without them (some wheels) goes without.
do $shim$
declare
  ext text;
begin
  foreach ext in array array['uuid-ossp', 'pgcrypto'] loop
    if exists (select from pg_catalog.pg_available_extensions where name = ext) then
      execute format('create extension if not exists %I with schema extensions', ext);
    end if;
  end loop;
end
$shim$;
-- rlscheck:end

grant usage on schema public to anon, authenticated, service_role;
-- rlscheck:unless schema extensions
grant usage on schema extensions to anon, authenticated, service_role;
-- rlscheck:end

-- What is created in public gets the API roles' grants: what the role running this creates,
-- and what postgres (the project's role, which runs the migrations) creates. Supabase's
-- config.toml can turn the latter off ([api] auto_expose_new_tables = false: the part
-- "api privileges" then revokes it).
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
do $shim$
begin
  if to_regrole('postgres') is not null and current_user <> 'postgres' then
    alter default privileges for role postgres in schema public grant all on tables to anon, authenticated, service_role;
    alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;
    alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;
    grant usage on schema public to postgres;
    if to_regnamespace('extensions') is not null then
      grant all on schema extensions to postgres;
      grant all on all tables in schema extensions to postgres;
      grant all on all sequences in schema extensions to postgres;
      grant all on all routines in schema extensions to postgres;
    end if;
    -- (supabase/postgres: grant_predefined_roles_to_postgres)
    grant pg_read_all_data, pg_signal_backend to postgres;
  end if;
exception when insufficient_privilege then
  raise notice 'rlscheck shim: % may not give postgres its grants', current_user;
end
$shim$;

-- The per-role settings a Supabase project has (its roles.sql): PostgREST logs in as
-- authenticator (whose settings become the API session's), then applies the impersonated
-- role's own settings to each request. A role that already has the setting keeps its value.
do $shim$
declare
  r record;
begin
  for r in
    select * from (values
      ('anon', 'statement_timeout', '3s'),
      ('authenticated', 'statement_timeout', '8s'),
      ('authenticator', 'statement_timeout', '8s'),
      ('authenticator', 'lock_timeout', '8s')
    ) as settings(role, name, value)
  loop
    if exists (select from pg_catalog.pg_roles where rolname = r.role)
       and not exists (
         select from pg_catalog.pg_db_role_setting s
           join pg_catalog.pg_roles o on o.oid = s.setrole
          where o.rolname = r.role and s.setdatabase = 0
            and exists (select from unnest(s.setconfig) as c(setting) where c.setting like r.name || '=%')
       ) then
      begin
        execute format('alter role %I set %I = %L', r.role, r.name, r.value);
      exception when insufficient_privilege then
        null;  -- a role the shim's runner may not alter goes without (as before)
      end;
    end if;
  end loop;
end
$shim$;
