-- rlscheck stand-in for plv8 3.1.10 (written for pytest-rlscheck; no V8, no C of its own).
--
-- What a migration sees: the trusted language plv8 in pg_catalog, so that
--   create function ... language plv8 as $$ ... $$;
-- and trigger functions written in plv8 are created like on Supabase, with the plv8_*
-- helper functions and array domains of the real extension.
--
-- How: a language handler has to be a C function, and the only one at hand without
-- building anything is PL/pgSQL's. The language's validator (which PostgreSQL calls on
-- every CREATE [OR REPLACE] FUNCTION ... LANGUAGE plv8) keeps the JavaScript in
-- rlscheck_plv8.sources and replaces the stored body (pg_proc.prosrc) with a PL/pgSQL
-- body that raises SQLSTATE 0A000. So a plv8 function exists with its real signature,
-- volatility, security and grants, and calling it fails loudly; no JavaScript ever runs.
--
-- Limits: DO blocks in plv8 are refused (no inline handler); pg_get_functiondef() and
-- pg_proc.prosrc show the stand-in body, not the JavaScript; a function renamed later
-- keeps its old name in the error message; PL/pgSQL's rules on argument and result
-- types apply (e.g. no `internal` arguments).

-- Language plumbing -------------------------------------------------------------------

create function @extschema@.plv8_call_handler()
returns language_handler
language c
as '$libdir/plpgsql', 'plpgsql_call_handler';

create schema rlscheck_plv8;
comment on schema rlscheck_plv8 is
  'rlscheck stand-in for plv8: the JavaScript source of each plv8 function (none of it runs)';

create table rlscheck_plv8.sources (
  funcid oid primary key,
  signature text not null,
  source text not null,
  recorded_at timestamptz not null default pg_catalog.now()
);
comment on table rlscheck_plv8.sources is
  'JavaScript of the plv8 functions created under the rlscheck stand-in; funcid is pg_proc.oid';

-- the source of a function is as readable as pg_proc.prosrc is
grant usage on schema rlscheck_plv8 to public;
grant select on rlscheck_plv8.sources to public;

create function @extschema@.plv8_call_validator(fn oid)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $validator$
declare
  marker constant text := '-- rlscheck: plv8 stand-in body';
  f record;
  stub text;
begin
  select p.oid, p.proname, p.prosrc, p.oid::regprocedure::text as signature
    into f
    from pg_catalog.pg_proc p
    join pg_catalog.pg_language l on l.oid = p.prolang
   where p.oid = fn and l.lanname = 'plv8';
  -- only plv8 functions, and only once per CREATE: a stand-in body stays as it is
  if not found or pg_catalog.starts_with(f.prosrc, marker) then
    return;
  end if;

  insert into rlscheck_plv8.sources as s (funcid, signature, source)
  values (f.oid, f.signature, f.prosrc)
  on conflict (funcid) do update
    set signature = excluded.signature, source = excluded.source, recorded_at = pg_catalog.now();

  stub := pg_catalog.format(
    E'%s\nbegin\n  raise exception using\n    errcode = %L,\n    message = %L,\n    detail = %L,\n    hint = %L;\nend\n',
    marker,
    '0A000',
    pg_catalog.format('plv8 function %s() cannot run under pytest-rlscheck: plv8 is a stand-in', f.proname),
    pg_catalog.format('No JavaScript runs in tests; the source of %s is kept in rlscheck_plv8.sources.', f.signature),
    'Test what calls this function with the function replaced (create or replace it in language sql or plpgsql inside the test), or leave it out of the tested path.'
  );
  update pg_catalog.pg_proc set prosrc = stub where oid = f.oid;
end
$validator$;

-- PostgreSQL calls a language's validator without checking EXECUTE; nobody else needs it
revoke all on function @extschema@.plv8_call_validator(oid) from public;

create trusted language plv8
  handler @extschema@.plv8_call_handler
  validator @extschema@.plv8_call_validator;

comment on language plv8 is 'rlscheck stand-in for plv8: functions are created, calling one raises an error';

-- What else the real extension creates ------------------------------------------------

create domain @extschema@.plv8_int2array as int2[];
create domain @extschema@.plv8_int4array as int4[];
create domain @extschema@.plv8_float4array as float4[];
create domain @extschema@.plv8_float8array as float8[];
create domain @extschema@.plv8_int8array as int8[];

create function @extschema@.plv8_version()
returns text
language sql
immutable
as $$ select '3.1.10'::text $$;

-- no V8 contexts to reset
create function @extschema@.plv8_reset()
returns void
language sql
as $$ select $$;

create function @extschema@.plv8_info()
returns json
language sql
as $$ select '[]'::json $$;
revoke all on function @extschema@.plv8_info() from public;
