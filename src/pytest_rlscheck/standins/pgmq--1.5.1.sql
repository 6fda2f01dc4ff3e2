-- rlscheck stand-in for pgmq 1.5.1 (Supabase Queues: the version Supabase ships on
-- PostgreSQL 17 images; PostgreSQL 15 images still have 1.4.4). Written for pytest-rlscheck.
--
-- Why a stand-in: pgmq is not in PostgreSQL's contrib, and test machines rarely have it.
--
-- What is real: the pgmq schema, pgmq.meta, the types message_record (with headers),
-- queue_record and metrics_result, and the public functions with pgmq 1.5.1's names,
-- argument names, defaults and overloads: create, create_non_partitioned,
-- create_unlogged, send / send_batch (with or without headers, delay in seconds or as
-- a timestamp), read (with the jsonb "conditional" filter), read_with_poll, pop,
-- archive and delete (one id or an array), set_vt, purge_queue, drop_queue, list_queues,
-- metrics, metrics_all, format_table_name and validate_queue_name with pgmq's error
-- messages. Each queue is a real pair of tables pgmq.q_<name> (msg_id identity, read_ct,
-- enqueued_at, vt, message, headers) and pgmq.a_<name> (the same plus archived_at),
-- with pgmq's indexes; like pgmq 1.5.1 they are made members of the extension when the
-- caller owns it. read hides what it returns for vt seconds (FOR UPDATE SKIP LOCKED);
-- archive moves rows to the archive table. Grants are pgmq's own: usage on the schema
-- and select on its tables and sequences for pg_monitor (default privileges included);
-- anon, authenticated and service_role get nothing, as on a Supabase project until the
-- dashboard's "expose Queues via PostgREST" is switched on (that creates pgmq_public,
-- which is not part of the extension and not here).
-- What is not: partitioned queues (create_partitioned, convert_archive_partitioned)
-- need pg_partman and are refused; the functions are PL/pgSQL rather than pgmq's.

\echo Use "CREATE EXTENSION pgmq" to load this file. \quit

create table pgmq.meta (
  queue_name varchar unique not null,
  is_partitioned boolean not null,
  is_unlogged boolean not null,
  created_at timestamp with time zone default pg_catalog.now() not null
);

grant usage on schema pgmq to pg_monitor;
grant select on all tables in schema pgmq to pg_monitor;
grant select on all sequences in schema pgmq to pg_monitor;
alter default privileges in schema pgmq grant select on tables to pg_monitor;
alter default privileges in schema pgmq grant select on sequences to pg_monitor;

create type pgmq.message_record as (
  msg_id bigint,
  read_ct integer,
  enqueued_at timestamp with time zone,
  vt timestamp with time zone,
  message jsonb,
  headers jsonb
);

create type pgmq.queue_record as (
  queue_name varchar,
  is_partitioned boolean,
  is_unlogged boolean,
  created_at timestamp with time zone
);

create type pgmq.metrics_result as (
  queue_name text,
  queue_length bigint,
  newest_msg_age_sec int,
  oldest_msg_age_sec int,
  total_messages bigint,
  scrape_time timestamp with time zone,
  queue_visible_length bigint
);

-- ---------------------------------------------------------------- helpers

create function pgmq.format_table_name(queue_name text, prefix text)
returns text
language plpgsql
as $fn$
begin
  if queue_name operator(pg_catalog.~) '\$|;|--|''' then
    raise exception 'queue name contains invalid characters: $, ;, --, or \''';
  end if;
  return pg_catalog.lower(prefix || '_' || queue_name);
end
$fn$;

create function pgmq.validate_queue_name(queue_name text)
returns void
language plpgsql
as $fn$
begin
  if pg_catalog.length(queue_name) >= 48 then
    raise exception 'queue name is too long, maximum length is 48 characters';
  end if;
end
$fn$;

create function pgmq._extension_exists(extension_name text)
returns boolean
language sql
as $fn$
  select exists (select 1 from pg_catalog.pg_extension where extname operator(pg_catalog.=) extension_name)
$fn$;

create function pgmq._belongs_to_pgmq(table_name text)
returns boolean
language sql
as $fn$
  select exists (
    select 1
      from pg_catalog.pg_depend d
      join pg_catalog.pg_class c on c.oid operator(pg_catalog.=) d.objid
                                and d.classid operator(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
      join pg_catalog.pg_extension e on e.oid operator(pg_catalog.=) d.refobjid
     where e.extname operator(pg_catalog.=) 'pgmq'
       and c.relname operator(pg_catalog.=) table_name
       and c.relnamespace operator(pg_catalog.=) 'pgmq'::pg_catalog.regnamespace
       and d.deptype operator(pg_catalog.=) 'e'
  )
$fn$;

-- the queue's tables join the extension, as pgmq 1.5.1 does, when the caller may do that
create function pgmq._rlscheck_adopt(queue_name text)
returns void
language plpgsql
as $fn$
declare
  q text := pgmq.format_table_name(queue_name, 'q');
  a text := pgmq.format_table_name(queue_name, 'a');
begin
  if not pgmq._extension_exists('pgmq') or not exists (
       select 1 from pg_catalog.pg_extension
        where extname operator(pg_catalog.=) 'pgmq'
          and pg_catalog.pg_has_role(current_user, extowner, 'USAGE')) then
    return;
  end if;
  if not pgmq._belongs_to_pgmq(q) then
    execute pg_catalog.format('alter extension pgmq add table pgmq.%I', q);
    execute pg_catalog.format('alter extension pgmq add sequence pgmq.%I', q || '_msg_id_seq');
  end if;
  if not pgmq._belongs_to_pgmq(a) then
    execute pg_catalog.format('alter extension pgmq add table pgmq.%I', a);
  end if;
end
$fn$;

create function pgmq._rlscheck_create(queue_name text, unlogged boolean)
returns void
language plpgsql
as $fn$
declare
  q text := pgmq.format_table_name(queue_name, 'q');
  a text := pgmq.format_table_name(queue_name, 'a');
begin
  perform pgmq.validate_queue_name(queue_name);
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pgmq.queue_' || queue_name));
  execute pg_catalog.format(
    'create %s table if not exists pgmq.%I (
       msg_id bigint primary key generated always as identity,
       read_ct int default 0 not null,
       enqueued_at timestamp with time zone default now() not null,
       vt timestamp with time zone not null,
       message jsonb,
       headers jsonb)',
    case when unlogged then 'unlogged' else '' end, q);
  execute pg_catalog.format(
    'create table if not exists pgmq.%I (
       msg_id bigint primary key,
       read_ct int default 0 not null,
       enqueued_at timestamp with time zone default now() not null,
       archived_at timestamp with time zone default now() not null,
       vt timestamp with time zone not null,
       message jsonb,
       headers jsonb)', a);
  perform pgmq._rlscheck_adopt(queue_name);
  execute pg_catalog.format('create index if not exists %I on pgmq.%I (vt asc)', q || '_vt_idx', q);
  execute pg_catalog.format('create index if not exists %I on pgmq.%I (archived_at)', 'archived_at_idx_' || queue_name, a);
  insert into pgmq.meta (queue_name, is_partitioned, is_unlogged)
  values (queue_name, false, unlogged)
  on conflict do nothing;
end
$fn$;

-- ---------------------------------------------------------------- queues

create function pgmq.create_non_partitioned(queue_name text)
returns void
language sql
as $fn$ select pgmq._rlscheck_create(queue_name, false) $fn$;

create function pgmq.create_unlogged(queue_name text)
returns void
language sql
as $fn$ select pgmq._rlscheck_create(queue_name, true) $fn$;

create function pgmq.create(queue_name text)
returns void
language sql
as $fn$ select pgmq._rlscheck_create(queue_name, false) $fn$;

create function pgmq._ensure_pg_partman_installed()
returns void
language plpgsql
as $fn$
begin
  if not pgmq._extension_exists('pg_partman') then
    raise exception 'pg_partman is required for partitioned queues';
  end if;
end
$fn$;

create function pgmq.create_partitioned(
  queue_name text,
  partition_interval text default '10000',
  retention_interval text default '100000'
)
returns void
language plpgsql
as $fn$
begin
  perform pgmq.validate_queue_name(queue_name);
  perform pgmq._ensure_pg_partman_installed();
  raise exception 'rlscheck: partitioned pgmq queues are not simulated by the pgmq stand-in'
    using errcode = 'feature_not_supported', hint = 'use pgmq.create() in tests';
end
$fn$;

create function pgmq.convert_archive_partitioned(
  table_name text,
  partition_interval text default '10000',
  retention_interval text default '100000',
  leading_partition integer default 10
)
returns void
language plpgsql
as $fn$
begin
  perform pgmq._ensure_pg_partman_installed();
  raise exception 'rlscheck: partitioned pgmq archives are not simulated by the pgmq stand-in'
    using errcode = 'feature_not_supported';
end
$fn$;

create function pgmq.list_queues()
returns setof pgmq.queue_record
language sql
as $fn$
  select queue_name, is_partitioned, is_unlogged, created_at from pgmq.meta
$fn$;

create function pgmq.drop_queue(queue_name text)
returns boolean
language plpgsql
as $fn$
declare
  q text := pgmq.format_table_name(queue_name, 'q');
  a text := pgmq.format_table_name(queue_name, 'a');
begin
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pgmq.queue_' || queue_name));
  if pg_catalog.to_regclass(pg_catalog.format('pgmq.%I', q)) is null then
    raise notice 'pgmq queue `%` does not exist', queue_name;
    return false;
  end if;
  -- like Supabase's patched drop_queue: detach only what is still a member
  if pgmq._belongs_to_pgmq(q) then
    execute pg_catalog.format('alter extension pgmq drop table pgmq.%I', q);
  end if;
  if pgmq._belongs_to_pgmq(q || '_msg_id_seq') then
    execute pg_catalog.format('alter extension pgmq drop sequence pgmq.%I', q || '_msg_id_seq');
  end if;
  if pgmq._belongs_to_pgmq(a) then
    execute pg_catalog.format('alter extension pgmq drop table pgmq.%I', a);
  end if;
  execute pg_catalog.format('drop table if exists pgmq.%I', q);
  execute pg_catalog.format('drop table if exists pgmq.%I', a);
  delete from pgmq.meta m where m.queue_name operator(pg_catalog.=) drop_queue.queue_name;
  return true;
end
$fn$;

create function pgmq.drop_queue(queue_name text, partitioned boolean)
returns boolean
language plpgsql
as $fn$
begin
  raise warning 'drop_queue(queue_name, partitioned) is deprecated and will be removed in PGMQ v2.0. Use drop_queue(queue_name) instead';
  return pgmq.drop_queue(queue_name);
end
$fn$;

create function pgmq.purge_queue(queue_name text)
returns bigint
language plpgsql
as $fn$
declare
  n bigint;
  q text := pgmq.format_table_name(queue_name, 'q');
begin
  execute pg_catalog.format('select count(*) from pgmq.%I', q) into n;
  execute pg_catalog.format('truncate table pgmq.%I', q);
  return n;
end
$fn$;

create function pgmq.detach_archive(queue_name text)
returns void
language plpgsql
as $fn$
declare
  a text := pgmq.format_table_name(queue_name, 'a');
begin
  if pgmq._belongs_to_pgmq(a) then
    execute pg_catalog.format('alter extension pgmq drop table pgmq.%I', a);
  end if;
end
$fn$;

-- ---------------------------------------------------------------- sending

create function pgmq.send(queue_name text, msg jsonb, headers jsonb, delay timestamp with time zone)
returns setof bigint
language plpgsql
as $fn$
begin
  return query execute pg_catalog.format(
    'insert into pgmq.%I (vt, message, headers) values ($1, $2, $3) returning msg_id',
    pgmq.format_table_name(queue_name, 'q'))
  using delay, msg, headers;
end
$fn$;

create function pgmq.send(queue_name text, msg jsonb)
returns setof bigint
language sql
as $fn$ select * from pgmq.send(queue_name, msg, null::jsonb, pg_catalog.clock_timestamp()) $fn$;

create function pgmq.send(queue_name text, msg jsonb, headers jsonb)
returns setof bigint
language sql
as $fn$ select * from pgmq.send(queue_name, msg, headers, pg_catalog.clock_timestamp()) $fn$;

create function pgmq.send(queue_name text, msg jsonb, delay integer)
returns setof bigint
language sql
as $fn$
  select * from pgmq.send(queue_name, msg, null::jsonb, pg_catalog.clock_timestamp() operator(pg_catalog.+) pg_catalog.make_interval(secs => delay))
$fn$;

create function pgmq.send(queue_name text, msg jsonb, delay timestamp with time zone)
returns setof bigint
language sql
as $fn$ select * from pgmq.send(queue_name, msg, null::jsonb, delay) $fn$;

create function pgmq.send(queue_name text, msg jsonb, headers jsonb, delay integer)
returns setof bigint
language sql
as $fn$
  select * from pgmq.send(queue_name, msg, headers, pg_catalog.clock_timestamp() operator(pg_catalog.+) pg_catalog.make_interval(secs => delay))
$fn$;

create function pgmq.send_batch(queue_name text, msgs jsonb[], headers jsonb[], delay timestamp with time zone)
returns setof bigint
language plpgsql
as $fn$
begin
  return query execute pg_catalog.format(
    'insert into pgmq.%I (vt, message, headers)
     select $1, m.message, $3[m.n]
       from pg_catalog.unnest($2) with ordinality as m (message, n)
      order by m.n
     returning msg_id',
    pgmq.format_table_name(queue_name, 'q'))
  using delay, msgs, headers;
end
$fn$;

create function pgmq.send_batch(queue_name text, msgs jsonb[])
returns setof bigint
language sql
as $fn$ select * from pgmq.send_batch(queue_name, msgs, null::jsonb[], pg_catalog.clock_timestamp()) $fn$;

create function pgmq.send_batch(queue_name text, msgs jsonb[], headers jsonb[])
returns setof bigint
language sql
as $fn$ select * from pgmq.send_batch(queue_name, msgs, headers, pg_catalog.clock_timestamp()) $fn$;

create function pgmq.send_batch(queue_name text, msgs jsonb[], delay integer)
returns setof bigint
language sql
as $fn$
  select * from pgmq.send_batch(queue_name, msgs, null::jsonb[], pg_catalog.clock_timestamp() operator(pg_catalog.+) pg_catalog.make_interval(secs => delay))
$fn$;

create function pgmq.send_batch(queue_name text, msgs jsonb[], delay timestamp with time zone)
returns setof bigint
language sql
as $fn$ select * from pgmq.send_batch(queue_name, msgs, null::jsonb[], delay) $fn$;

create function pgmq.send_batch(queue_name text, msgs jsonb[], headers jsonb[], delay integer)
returns setof bigint
language sql
as $fn$
  select * from pgmq.send_batch(queue_name, msgs, headers, pg_catalog.clock_timestamp() operator(pg_catalog.+) pg_catalog.make_interval(secs => delay))
$fn$;

-- ---------------------------------------------------------------- reading

create function pgmq.read(queue_name text, vt integer, qty integer, conditional jsonb default '{}')
returns setof pgmq.message_record
language plpgsql
as $fn$
declare
  q text := pgmq.format_table_name(queue_name, 'q');
begin
  return query execute pg_catalog.format(
    'with picked as (
       select msg_id from pgmq.%1$I
        where vt <= clock_timestamp() and ($3 = ''{}''::jsonb or message @> $3)
        order by msg_id
        limit $1
        for update skip locked)
     update pgmq.%1$I m
        set vt = clock_timestamp() + $2, read_ct = m.read_ct + 1
       from picked
      where m.msg_id = picked.msg_id
     returning m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message, m.headers', q)
  using qty, pg_catalog.make_interval(secs => vt), coalesce(conditional, '{}'::jsonb);
end
$fn$;

create function pgmq.read_with_poll(
  queue_name text,
  vt integer,
  qty integer,
  max_poll_seconds integer default 5,
  poll_interval_ms integer default 100,
  conditional jsonb default '{}'
)
returns setof pgmq.message_record
language plpgsql
as $fn$
declare
  stop_at timestamp with time zone := pg_catalog.clock_timestamp() operator(pg_catalog.+) pg_catalog.make_interval(secs => max_poll_seconds);
  r pgmq.message_record;
  got boolean;
begin
  loop
    if pg_catalog.clock_timestamp() operator(pg_catalog.>=) stop_at then
      return;
    end if;
    got := false;
    for r in select * from pgmq.read(queue_name, vt, qty, conditional) loop
      got := true;
      return next r;
    end loop;
    if got then
      return;
    end if;
    perform pg_catalog.pg_sleep(poll_interval_ms::numeric operator(pg_catalog./) 1000);
  end loop;
end
$fn$;

create function pgmq.pop(queue_name text)
returns setof pgmq.message_record
language plpgsql
as $fn$
begin
  return query execute pg_catalog.format(
    'with picked as (
       select msg_id from pgmq.%1$I
        where vt <= clock_timestamp()
        order by msg_id
        limit 1
        for update skip locked)
     delete from pgmq.%1$I m using picked
      where m.msg_id = picked.msg_id
     returning m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message, m.headers',
    pgmq.format_table_name(queue_name, 'q'));
end
$fn$;

create function pgmq.set_vt(queue_name text, msg_id bigint, vt integer)
returns setof pgmq.message_record
language plpgsql
as $fn$
begin
  return query execute pg_catalog.format(
    'update pgmq.%I m set vt = clock_timestamp() + $2
      where m.msg_id = $1
     returning m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message, m.headers',
    pgmq.format_table_name(queue_name, 'q'))
  using msg_id, pg_catalog.make_interval(secs => vt);
end
$fn$;

-- ---------------------------------------------------------------- archive and delete

create function pgmq.archive(queue_name text, msg_ids bigint[])
returns setof bigint
language plpgsql
as $fn$
begin
  return query execute pg_catalog.format(
    'with gone as (
       delete from pgmq.%I where msg_id = any($1)
       returning msg_id, vt, read_ct, enqueued_at, message, headers)
     insert into pgmq.%I (msg_id, vt, read_ct, enqueued_at, message, headers)
     select msg_id, vt, read_ct, enqueued_at, message, headers from gone
     returning msg_id',
    pgmq.format_table_name(queue_name, 'q'), pgmq.format_table_name(queue_name, 'a'))
  using msg_ids;
end
$fn$;

create function pgmq.archive(queue_name text, msg_id bigint)
returns boolean
language sql
as $fn$ select exists (select 1 from pgmq.archive(queue_name, array[msg_id])) $fn$;

create function pgmq.delete(queue_name text, msg_ids bigint[])
returns setof bigint
language plpgsql
as $fn$
begin
  return query execute pg_catalog.format(
    'delete from pgmq.%I where msg_id = any($1) returning msg_id',
    pgmq.format_table_name(queue_name, 'q'))
  using msg_ids;
end
$fn$;

create function pgmq.delete(queue_name text, msg_id bigint)
returns boolean
language sql
as $fn$ select exists (select 1 from pgmq.delete(queue_name, array[msg_id])) $fn$;

-- ---------------------------------------------------------------- metrics

create function pgmq.metrics(queue_name text)
returns pgmq.metrics_result
language plpgsql
as $fn$
declare
  q text := pgmq.format_table_name(queue_name, 'q');
  result pgmq.metrics_result;
begin
  execute pg_catalog.format(
    'select $1::text,
            count(*),
            extract(epoch from (now() - max(enqueued_at)))::int,
            extract(epoch from (now() - min(enqueued_at)))::int,
            (select case when is_called then last_value else 0 end from pgmq.%I),
            now(),
            count(*) filter (where vt <= now())
       from pgmq.%I',
    q || '_msg_id_seq', q)
  into result
  using queue_name;
  return result;
end
$fn$;

create function pgmq.metrics_all()
returns setof pgmq.metrics_result
language plpgsql
as $fn$
declare
  name text;
begin
  for name in select m.queue_name from pgmq.meta m loop
    return next pgmq.metrics(name);
  end loop;
end
$fn$;
