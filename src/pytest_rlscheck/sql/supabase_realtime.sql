-- rlscheck Supabase shim: the (initially empty) publication Supabase Realtime listens on,
-- so that `alter publication supabase_realtime add table ...` applies; left out when the
-- sources create it themselves (a dump of a Supabase database has CREATE PUBLICATION).

-- rlscheck:unless publication supabase_realtime
do $shim$
begin
  if not exists (select from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$shim$;
-- rlscheck:end

-- Realtime authorization: policies on realtime.messages decide who may broadcast/listen.
create schema if not exists realtime;
grant usage on schema realtime to anon, authenticated, service_role;
create table if not exists realtime.messages (
  id uuid not null default gen_random_uuid(),
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp not null default now(),
  inserted_at timestamp not null default now(),
  primary key (id, inserted_at)
);
alter table realtime.messages enable row level security;
grant select, insert, update on realtime.messages to anon, authenticated, service_role;
-- supabase_realtime_admin's, as on Supabase; postgres may use it (and create policies on it:
-- supautils' policy_grants)
do $shim$
begin
  if (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
    alter table realtime.messages owner to supabase_realtime_admin;
  end if;
  if to_regrole('postgres') is not null and current_user <> 'postgres' then
    grant usage on schema realtime to postgres;
    grant all on realtime.messages to postgres;
  end if;
end
$shim$;

create or replace function realtime.topic() returns text
language sql stable
as $$ select nullif(current_setting('realtime.topic', true), '')::text $$;

-- Broadcast from the database: each message is a row of realtime.messages, written with the
-- rights of the function's owner (as on Supabase), never failing the caller's statement.
create or replace function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into realtime.messages (payload, event, topic, private, extension)
  values (payload, event, topic, private, 'broadcast');
exception when others then
  raise warning 'ErrorSendingBroadcastMessage: %', sqlerrm;
end
$$;

create or replace function realtime.broadcast_changes(
  topic_name text, event_name text, operation text, table_name text, table_schema text,
  new record, old record, level text default 'ROW'
) returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform realtime.send(
    jsonb_build_object(
      'operation', operation, 'table', table_name, 'schema', table_schema,
      'record', case when new is null then null else to_jsonb(new) end,
      'old_record', case when old is null then null else to_jsonb(old) end
    ),
    event_name, topic_name, true
  );
end
$$;
