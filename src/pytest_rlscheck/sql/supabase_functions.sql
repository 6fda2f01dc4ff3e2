-- rlscheck Supabase shim: database webhooks (supabase_functions), written for rlscheck from
-- their public interface: the hooks audit table and the trigger function
-- `supabase_functions.http_request(url, method, headers, params, timeout_ms)` that a
-- webhook's trigger passes its arguments to. The request goes through pg_net (the shim
-- creates it with this part; the rlscheck stand-in queues it, sends nothing), and each call
-- is recorded in supabase_functions.hooks with the request's id, as on Supabase.

create schema if not exists supabase_functions;

create table if not exists supabase_functions.migrations (
  version text primary key,
  inserted_at timestamptz not null default now()
);
insert into supabase_functions.migrations (version) values ('initial') on conflict do nothing;

create table if not exists supabase_functions.hooks (
  id bigserial primary key,
  hook_table_id integer not null,
  hook_name text not null,
  created_at timestamptz not null default now(),
  request_id bigint
);
create index if not exists supabase_functions_hooks_request_id_idx on supabase_functions.hooks (request_id);
create index if not exists supabase_functions_hooks_h_table_id_h_name_idx
  on supabase_functions.hooks (hook_table_id, hook_name);
comment on table supabase_functions.hooks is 'Supabase Functions Hooks: Audit trail for triggered hooks.';

-- TG_ARGV: url, method (GET or POST; POST when null), headers (json), params (json),
-- timeout in milliseconds. POST sends the row change as the webhook payload.
create or replace function supabase_functions.http_request()
returns trigger
language plpgsql
security definer
set search_path = supabase_functions
as $$
declare
  url text := TG_ARGV[0];
  method text := coalesce(nullif(TG_ARGV[1], 'null'), 'POST');
  headers jsonb := coalesce(nullif(TG_ARGV[2], 'null'), '{}')::jsonb;
  params jsonb := coalesce(nullif(TG_ARGV[3], 'null'), '{}')::jsonb;
  timeout_ms integer := coalesce(nullif(TG_ARGV[4], 'null'), '1000')::integer;
  request_id bigint;
begin
  if url is null or url = 'null' then
    raise exception 'url argument is missing';
  end if;
  if method = 'GET' then
    request_id := net.http_get(url, params, headers, timeout_ms);
  elsif method = 'POST' then
    request_id := net.http_post(
      url,
      jsonb_build_object(
        'old_record', to_jsonb(old), 'record', to_jsonb(new), 'type', TG_OP,
        'table', TG_TABLE_NAME, 'schema', TG_TABLE_SCHEMA
      ),
      params, headers, timeout_ms
    );
  else
    raise exception 'method argument % is invalid', method;
  end if;
  insert into supabase_functions.hooks (hook_table_id, hook_name, request_id) values (TG_RELID, TG_NAME, request_id);
  return new;
end
$$;
-- the API roles (and postgres, where that role exists) get the schema and all in it
do $shim$
declare
  grantees text := (
    select string_agg(quote_ident(rolname), ', ') from pg_catalog.pg_roles
    where rolname in ('postgres', 'anon', 'authenticated', 'service_role')
  );
begin
  execute format('grant usage on schema supabase_functions to %s', grantees);
  execute format('grant all on all tables in schema supabase_functions to %s', grantees);
  execute format('grant all on all sequences in schema supabase_functions to %s', grantees);
  execute format('grant all on all functions in schema supabase_functions to %s', grantees);
  execute format('alter default privileges in schema supabase_functions grant all on tables to %s', grantees);
  execute format('alter default privileges in schema supabase_functions grant all on functions to %s', grantees);
  execute format('alter default privileges in schema supabase_functions grant all on sequences to %s', grantees);
end
$shim$;
