-- rlscheck stand-in for pg_cron 1.6 (Supabase ships 1.6.4; written for pytest-rlscheck).
--
-- Why a stand-in: the real pg_cron needs shared_preload_libraries, keeps a background
-- connection to its database (which then cannot be used as a template to clone per
-- test) and would run the jobs while the tests run.
--
-- What is real: the cron schema, cron.job and cron.job_run_details with their columns,
-- constraints, row level security and policies, the sequences, the grants, and the
-- functions with their signatures. cron.schedule / schedule_in_database / alter_job
-- check the schedule like pg_cron does (5-field cron, @hourly etc., or '[1-59] seconds')
-- with pg_cron's error messages, and record the job under the calling role's name, as
-- pg_cron does; unschedule removes it, with pg_cron's ownership rules.
-- What is simulated: nothing runs a job, so cron.job_run_details stays empty unless a
-- test writes to it. The calling role is the one in effect for the session (SET ROLE, or
-- the session user): a SECURITY DEFINER function of the user's that calls cron.schedule
-- records the job under the session's role rather than the function owner's.

create schema cron;

create sequence cron.jobid_seq;
grant select on sequence cron.jobid_seq to public;

create table cron.job (
  jobid bigint primary key default pg_catalog.nextval('cron.jobid_seq'),
  schedule text not null,
  command text not null,
  nodename text not null default 'localhost',
  nodeport int not null default pg_catalog.inet_server_port(),
  database text not null default pg_catalog.current_database(),
  username text not null default current_user,
  active boolean not null default true,
  jobname text,
  constraint jobname_username_uniq unique (jobname, username)
);
grant select on cron.job to public;
alter table cron.job enable row level security;
create policy cron_job_policy on cron.job using (username operator(pg_catalog.=) current_user);

create sequence cron.runid_seq;
grant select on sequence cron.runid_seq to public;

create table cron.job_run_details (
  jobid bigint,
  runid bigint primary key default pg_catalog.nextval('cron.runid_seq'),
  job_pid integer,
  database text,
  username text,
  command text,
  status text,
  return_message text,
  start_time timestamptz,
  end_time timestamptz
);
grant select, delete on cron.job_run_details to public;
alter table cron.job_run_details enable row level security;
create policy cron_job_run_details_policy on cron.job_run_details
  using (username operator(pg_catalog.=) current_user);

select pg_catalog.pg_extension_config_dump('cron.job', '');
select pg_catalog.pg_extension_config_dump('cron.jobid_seq', '');
select pg_catalog.pg_extension_config_dump('cron.job_run_details', '');
select pg_catalog.pg_extension_config_dump('cron.runid_seq', '');

-- The real trigger tells the scheduler to reload its jobs; there is no scheduler here.
create function cron.job_cache_invalidate()
returns trigger
language plpgsql
as $$
begin
  return null;
end
$$;
comment on function cron.job_cache_invalidate() is 'invalidate job cache';

create trigger cron_job_cache_invalidate
  after insert or update or delete or truncate on cron.job
  for statement execute procedure cron.job_cache_invalidate();

-- Private helpers of the stand-in -----------------------------------------------------

-- Whether pg_cron would accept the schedule: a 5-field cron expression (numbers, names,
-- ranges, lists, */step and a-b/step; '$' for the last day of the month), one of
-- @yearly @annually @monthly @weekly @daily @midnight @hourly @reboot, or '<1-59> seconds'.
create function cron._rlscheck_schedule_is_valid(schedule text)
returns boolean
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
declare
  fields text[];
  lows constant int[] := array[0, 0, 1, 1, 0];
  highs constant int[] := array[59, 23, 31, 12, 7];
  months constant text[] := array['jan','feb','mar','apr','may','jun','jul','aug','sep','oct','nov','dec'];
  days constant text[] := array['sun','mon','tue','wed','thu','fri','sat','sun'];
  m text[];
  item text;
  n int;
  a int;
  b int;
  seconds text[];
  k int;
begin
  if schedule is null then
    return false;
  end if;
  if schedule ~ '^[[:space:]]*@(reboot|restart|yearly|annually|monthly|weekly|daily|midnight|hourly)([[:space:]]|$)' then
    return true;
  end if;

  seconds := regexp_match(lower(schedule), '^[[:space:]]*([0-9]{1,9})[[:space:]]*seconds?[[:space:]]*$');
  if seconds is not null then
    return seconds[1]::int between 1 and 59;
  end if;

  fields := regexp_split_to_array(btrim(schedule, E' \t\n\r'), E'[ \t]+');
  if array_length(fields, 1) is distinct from 5 then
    return false;
  end if;
  for n in 1..5 loop
    if n = 3 and fields[3] = '$' then
      continue;
    end if;
    foreach item in array string_to_array(fields[n], ',') loop
      -- range = * | value | value-value, then an optional /step (a lone value takes none)
      m := regexp_match(lower(item), '^(\*|([a-z0-9]+)(-([a-z0-9]+))?)(/([0-9]+))?$');
      if m is null or (m[2] is not null and m[3] is null and m[5] is not null) then
        return false;
      end if;
      if m[5] is not null and m[6]::bigint < 1 then
        return false;
      end if;
      if m[1] <> '*' then
        foreach k in array array[1, 2] loop
          item := case k when 1 then m[2] else m[4] end;
          continue when item is null;
          if item ~ '^[0-9]+$' then
            if length(item) > 9 then return false; end if;
            a := item::int;
          elsif n = 4 and item = any (months) then
            a := array_position(months, item);
          elsif n = 5 and item = any (days) then
            a := array_position(days, item) - 1;
          else
            return false;
          end if;
          if a < lows[n] or a > highs[n] then
            return false;
          end if;
        end loop;
      end if;
    end loop;
  end loop;
  return true;
end
$$;

-- The role that called into the stand-in's SECURITY DEFINER functions.
create function cron._rlscheck_caller()
returns text
language sql
stable
as $$
  select case when pg_catalog.current_setting('role') operator(pg_catalog.=) 'none'
              then session_user::text
              else pg_catalog.current_setting('role') end
$$;

create function cron._rlscheck_check_schedule(schedule text)
returns void
language plpgsql
immutable
as $$
begin
  if not cron._rlscheck_schedule_is_valid(schedule) then
    raise exception using
      errcode = '22023',
      message = pg_catalog.format('invalid schedule: %s', schedule),
      hint = 'Use cron format (e.g. 5 4 * * *), or interval format ''[1-59] seconds''';
  end if;
end
$$;

-- The role must exist and be able to log in, and may connect to the database.
create function cron._rlscheck_check_runner(username text, database text)
returns void
language plpgsql
stable
as $$
declare
  login boolean;
begin
  select r.rolcanlogin into login from pg_catalog.pg_roles r where r.rolname operator(pg_catalog.=) username;
  if not found then
    raise exception 'role "%" does not exist', username;
  elsif not login then
    raise exception using
      message = pg_catalog.format('role "%s" can not log in', username),
      detail = 'Jobs may only be run by roles that have the LOGIN attribute.';
  end if;
  if database is not null and not pg_catalog.has_database_privilege(username, database, 'CONNECT') then
    raise exception 'User % does not have CONNECT privilege on %', username, database;
  end if;
end
$$;

create function cron._rlscheck_add_job(
  caller text,
  job_name text,
  schedule text,
  command text,
  database text,
  username text,
  active boolean
)
returns bigint
language plpgsql
as $$
declare
  runner text := coalesce(username, caller);
  -- like pg_cron: the database named by cron.database_name, 'postgres' unless set (as on
  -- Supabase); the current one on a server without a postgres database
  db text := coalesce(database, nullif(pg_catalog.current_setting('cron.database_name', true), ''),
                      (select d.datname::text from pg_catalog.pg_database d where d.datname operator(pg_catalog.=) 'postgres'),
                      pg_catalog.current_database());
  id bigint;
begin
  perform cron._rlscheck_check_schedule(schedule);
  if username is not null then
    if not (select r.rolsuper from pg_catalog.pg_roles r where r.rolname operator(pg_catalog.=) caller) then
      raise exception 'must be superuser to create a job for another role';
    end if;
    perform cron._rlscheck_check_runner(username, null);
  end if;
  if not exists (select from pg_catalog.pg_database d where d.datname operator(pg_catalog.=) db) then
    raise exception using errcode = '3D000', message = pg_catalog.format('database "%s" does not exist', db);
  end if;
  if not pg_catalog.has_database_privilege(runner, db, 'CONNECT') then
    raise exception 'User % does not have CONNECT privilege on %', runner, db;
  end if;

  if job_name is null then
    insert into cron.job (schedule, command, nodename, nodeport, database, username, active)
    values (schedule, command, 'localhost', pg_catalog.current_setting('port')::int, db, runner, active)
    returning jobid into id;
  else
    insert into cron.job as j (schedule, command, nodename, nodeport, database, username, active, jobname)
    values (schedule, command, 'localhost', pg_catalog.current_setting('port')::int, db, runner, active, job_name)
    on conflict on constraint jobname_username_uniq do update
      set schedule = excluded.schedule, command = excluded.command, database = excluded.database
    returning j.jobid into id;
  end if;
  return id;
end
$$;

-- Only the stand-in's SECURITY DEFINER functions (owned by the extension's owner) call these.
revoke all on function cron._rlscheck_check_runner(text, text) from public;
revoke all on function cron._rlscheck_add_job(text, text, text, text, text, text, boolean) from public;

-- pg_cron's functions -----------------------------------------------------------------

create function cron.schedule(schedule text, command text)
returns bigint
language plpgsql
strict
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  return cron._rlscheck_add_job(cron._rlscheck_caller(), null, schedule, command, null, null, true);
end
$$;
comment on function cron.schedule(text, text) is 'schedule a pg_cron job';

create function cron.schedule(job_name text, schedule text, command text)
returns bigint
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if job_name is null then
    raise exception 'job_name can not be NULL';
  elsif schedule is null then
    raise exception 'schedule can not be NULL';
  elsif command is null then
    raise exception 'command can not be NULL';
  end if;
  return cron._rlscheck_add_job(cron._rlscheck_caller(), job_name, schedule, command, null, null, true);
end
$$;
comment on function cron.schedule(text, text, text) is 'schedule a pg_cron job';

create function cron.schedule_in_database(
  job_name text,
  schedule text,
  command text,
  database text,
  username text default null,
  active boolean default 'true'
)
returns bigint
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if job_name is null then
    raise exception 'job_name can not be NULL';
  elsif schedule is null then
    raise exception 'schedule can not be NULL';
  elsif command is null then
    raise exception 'command can not be NULL';
  end if;
  return cron._rlscheck_add_job(cron._rlscheck_caller(), job_name, schedule, command, database, username,
                                coalesce(active, true));
end
$$;
comment on function cron.schedule_in_database(text, text, text, text, text, boolean) is 'schedule a pg_cron job';
-- admin should decide whether cron.schedule_in_database is safe by explicitly granting execute
revoke all on function cron.schedule_in_database(text, text, text, text, text, boolean) from public;

create function cron.unschedule(job_id bigint)
returns bool
language plpgsql
strict
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  caller text := cron._rlscheck_caller();
  owner_name text;
begin
  select j.username into owner_name from cron.job j where j.jobid operator(pg_catalog.=) job_id for update;
  if not found then
    raise exception 'could not find valid entry for job %', job_id;
  end if;
  if pg_catalog.lower(owner_name) operator(pg_catalog.<>) pg_catalog.lower(caller)
     and not pg_catalog.has_table_privilege(caller, 'cron.job', 'DELETE') then
    raise exception using errcode = '42501', message = 'permission denied for table job';
  end if;
  delete from cron.job j where j.jobid operator(pg_catalog.=) job_id;
  return true;
end
$$;
comment on function cron.unschedule(bigint) is 'unschedule a pg_cron job';

create function cron.unschedule(job_name text)
returns bool
language plpgsql
strict
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  caller text := cron._rlscheck_caller();
  id bigint;
begin
  select j.jobid into id from cron.job j
   where j.jobname operator(pg_catalog.=) job_name and j.username operator(pg_catalog.=) caller
   limit 1 for update;
  if not found then
    raise exception 'could not find valid entry for job ''%''', job_name;
  end if;
  delete from cron.job j where j.jobid operator(pg_catalog.=) id;
  return true;
end
$$;
comment on function cron.unschedule(text) is 'unschedule a pg_cron job';

create function cron.alter_job(
  job_id bigint,
  schedule text default null,
  command text default null,
  database text default null,
  username text default null,
  active boolean default null
)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  caller text := cron._rlscheck_caller();
  is_super boolean := (select r.rolsuper from pg_catalog.pg_roles r where r.rolname operator(pg_catalog.=) caller);
  runner text := coalesce(username, caller);
  changed int;
begin
  if job_id is null then
    raise exception 'job_id can not be NULL';
  end if;
  if username is not null then
    if not is_super then
      raise exception 'must be superuser to alter username';
    end if;
    perform cron._rlscheck_check_runner(username, null);
  end if;
  if database is not null then
    if not exists (select from pg_catalog.pg_database d where d.datname operator(pg_catalog.=) database) then
      raise exception using errcode = '3D000', message = pg_catalog.format('database "%s" does not exist', database);
    end if;
    if not pg_catalog.has_database_privilege(runner, database, 'CONNECT') then
      raise exception 'User % does not have CONNECT privilege on %', runner, database;
    end if;
  end if;
  if schedule is not null then
    perform cron._rlscheck_check_schedule(schedule);
  end if;
  if schedule is null and command is null and database is null and username is null and active is null then
    raise exception using
      message = 'no updates specified',
      hint = 'You must specify at least one job attribute to change when calling alter_job';
  end if;

  update cron.job j
     set schedule = coalesce(alter_job.schedule, j.schedule),
         command = coalesce(alter_job.command, j.command),
         database = coalesce(alter_job.database, j.database),
         username = coalesce(alter_job.username, j.username),
         active = coalesce(alter_job.active, j.active)
   where j.jobid operator(pg_catalog.=) job_id
     and (is_super or j.username operator(pg_catalog.=) caller);
  get diagnostics changed = row_count;
  if changed = 0 then
    raise exception 'Job % does not exist or you don''t own it', job_id;
  end if;
end
$$;
comment on function cron.alter_job(bigint, text, text, text, text, boolean) is
  'Alter the job identified by job_id. Any option left as NULL will not be modified.';
-- admin should decide whether alter_job is safe by explicitly granting execute
revoke all on function cron.alter_job(bigint, text, text, text, text, boolean) from public;

-- What Supabase adds when pg_cron is created (its grant_pg_cron_access event trigger and
-- the supautils after-create script for pg_cron), on a database that has Supabase's
-- postgres and supabase_admin roles: postgres may use the schema and call every
-- function (alter_job and schedule_in_database included), and only read cron.job.
do $grants$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'postgres')
     or not exists (select from pg_catalog.pg_roles where rolname = 'supabase_admin') then
    return;
  end if;
  grant usage on schema cron to postgres with grant option;
  grant all on all functions in schema cron to postgres with grant option;
  alter default privileges in schema cron grant all on tables to postgres with grant option;
  alter default privileges in schema cron grant all on functions to postgres with grant option;
  alter default privileges in schema cron grant all on sequences to postgres with grant option;
  alter default privileges for user supabase_admin in schema cron grant all on sequences to postgres with grant option;
  alter default privileges for user supabase_admin in schema cron grant all on tables to postgres with grant option;
  alter default privileges for user supabase_admin in schema cron grant all on functions to postgres with grant option;
  grant all privileges on all tables in schema cron to postgres with grant option;
  revoke all on table cron.job from postgres;
  grant select on table cron.job to postgres with grant option;
end
$grants$;
