-- rlscheck Supabase shim: roles, the extensions schema and the default privileges that a
-- Supabase project gives its API roles (supabase/postgres migrations/db/init-scripts).
-- Roles are cluster-wide: created only when missing, never altered.

do $shim$
declare
  r record;
begin
  for r in
    select * from (values
      ('anon', 'nologin noinherit'),
      ('authenticated', 'nologin noinherit'),
      ('service_role', 'nologin noinherit bypassrls'),
      ('authenticator', 'login noinherit'),
      -- Supabase's own service roles, which migrations grant to (auth hooks, storage,
      -- dashboards); no privileges come with them here
      ('supabase_admin', 'nologin'),
      ('supabase_auth_admin', 'nologin noinherit'),
      ('supabase_storage_admin', 'nologin noinherit'),
      ('supabase_realtime_admin', 'nologin noinherit'),
      ('supabase_functions_admin', 'nologin noinherit'),
      ('dashboard_user', 'nologin')
    ) as roles(name, attributes)
  loop
    if not exists (select from pg_catalog.pg_roles where rolname = r.name) then
      execute format('create role %I %s', r.name, r.attributes);
    end if;
  end loop;
  -- PostgREST logs in as authenticator and switches to one of these per request.
  for r in select unnest(array['anon', 'authenticated', 'service_role']) as name loop
    if not pg_catalog.pg_has_role('authenticator', r.name, 'MEMBER') then
      execute format('grant %I to authenticator', r.name);
    end if;
    -- The connection the tests run on switches role the same way.
    if not pg_catalog.pg_has_role(current_user, r.name, 'MEMBER') then
      execute format('grant %I to %I', r.name, current_user);
    end if;
  end loop;
end
$shim$;

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

grant usage on schema public to anon, authenticated, service_role;
grant usage on schema extensions to anon, authenticated, service_role;

alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
