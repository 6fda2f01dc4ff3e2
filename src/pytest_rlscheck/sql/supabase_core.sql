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
      ('authenticator', 'login noinherit')
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
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;

grant usage on schema public to anon, authenticated, service_role;
grant usage on schema extensions to anon, authenticated, service_role;

alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
