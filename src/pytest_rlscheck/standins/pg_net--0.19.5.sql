-- rlscheck stand-in for pg_net 0.19.5 (written for pytest-rlscheck; no background worker, no curl).
--
-- The public interface of pg_net as a Supabase project sees it: the net schema, the
-- request queue and response tables, the result types and net.http_get / http_post /
-- http_delete with their signatures and defaults. A call checks its arguments like the
-- real one, writes the request to net.http_request_queue and returns its id. Nothing
-- ever takes it off the queue: no request is sent and no response arrives, so a test can
-- look at exactly what would have been sent. A test may insert a row into
-- net._http_response itself to play the server's answer for net._http_collect_response.
--
-- Grants: those of pg_net itself (the schema and its tables to PUBLIC), then, on a
-- database with the Supabase roles, what Supabase's grant_pg_net_access event trigger
-- does when pg_net is created: http_get and http_post become SECURITY DEFINER with
-- search_path net, executable by supabase_functions_admin, postgres, anon,
-- authenticated and service_role rather than PUBLIC.

create schema if not exists net;

create domain net.http_method as text
  check (value ilike 'get' or value ilike 'post' or value ilike 'delete');

-- Requests waiting for the worker; under the stand-in they wait forever.
create unlogged table net.http_request_queue (
  id bigserial,
  method net.http_method not null,
  url text not null,
  headers jsonb,
  body bytea,
  timeout_milliseconds int not null
);

-- Responses by request id; only a test writes here under the stand-in.
create unlogged table net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out bool,
  error_msg text,
  created timestamptz not null default now()
);

create index on net._http_response (created);

create type net.request_status as enum ('PENDING', 'SUCCESS', 'ERROR');

create type net.http_response as (
  status_code integer,
  headers jsonb,
  body text
);

create type net.http_response_result as (
  status net.request_status,
  message text,
  response net.http_response
);

-- Worker plumbing: there is no worker, and these say so without failing ---------------

create function net.check_worker_is_up()
returns void
language plpgsql
as $$
begin
  -- the stand-in has no worker to be down; requests stay queued (see net.http_request_queue)
  return;
end
$$;
comment on function net.check_worker_is_up() is
  'rlscheck stand-in: there is no pg_net worker; requests stay in net.http_request_queue';

create function net.worker_restart()
returns bool
language sql
as $$ select true $$;

create function net.wait_until_running()
returns void
language sql
as $$ select $$;
comment on function net.wait_until_running() is 'rlscheck stand-in: returns at once (no worker)';

create function net.wake()
returns void
language sql
as $$ select $$;

-- URL building, as curl does it -------------------------------------------------------

-- percent-encode every byte but the unreserved characters of RFC 3986
create function net._urlencode_string(string varchar)
returns text
language sql
immutable
as $$
  select case when string is not null then coalesce((
    select pg_catalog.string_agg(
             case
               when b between 48 and 57 or b between 65 and 90 or b between 97 and 122
                    or b in (45, 46, 95, 126)  -- - . _ ~
                 then pg_catalog.chr(b)
               else '%' || pg_catalog.upper(pg_catalog.lpad(pg_catalog.to_hex(b), 2, '0'))
             end,
             '' order by i)
      from (select pg_catalog.convert_to(string, pg_catalog.getdatabaseencoding()::text) as raw) r,
           pg_catalog.generate_series(0, pg_catalog.length(r.raw) - 1) as i,
           pg_catalog.get_byte(r.raw, i) as b
  ), '') end
$$;

-- the url with each (already encoded) key=value appended to its query string
create function net._encode_url_with_params_array(url text, params_array text[])
returns text
language plpgsql
immutable
as $$
declare
  parts text[];
  base text;
  query text;
  fragment text;
  param text;
begin
  if url is null or params_array is null then
    return null;
  end if;
  -- scheme://authority[/path][?query][#fragment]
  parts := pg_catalog.regexp_match(url, '^([A-Za-z][A-Za-z0-9+.-]*://[^/?#[:space:]]+)([^?#[:space:]]*)(\?[^#[:space:]]*)?(#[^[:space:]]*)?$');
  if parts is null then
    raise exception 'URL using bad/illegal format or missing URL';
  end if;
  base := parts[1] || case when parts[2] = '' then '/' else parts[2] end;
  query := pg_catalog.substr(coalesce(parts[3], ''), 2);
  fragment := coalesce(parts[4], '');
  foreach param in array params_array loop
    continue when param is null;
    query := case when query = '' then param else query || '&' || param end;
  end loop;
  return base || case when query = '' and parts[3] is null then '' else '?' || query end || fragment;
end
$$;

-- Awaiting a response that only a test can provide
create function net._await_response(request_id bigint)
returns bool
language plpgsql
as $$
begin
  if exists (select from net._http_response r where r.id = request_id) then
    return true;
  end if;
  -- the real one polls until the worker stores the response; here none will ever come
  raise exception using
    errcode = '0A000',
    message = pg_catalog.format('no response will arrive for request %s: pg_net is a stand-in under pytest-rlscheck and sends no HTTP requests', request_id),
    hint = 'The request is in net.http_request_queue; a test may insert the response into net._http_response itself.';
end
$$;

-- The public calls ---------------------------------------------------------------------

create function net.http_get(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds int default 5000
)
returns bigint
language plpgsql
as $$
declare
  encoded text[];
  request_id bigint;
begin
  select coalesce(pg_catalog.array_agg(net._urlencode_string(p.key) || '=' || net._urlencode_string(p.value)), '{}')
    into encoded
    from pg_catalog.jsonb_each_text(params) as p;

  insert into net.http_request_queue (method, url, headers, timeout_milliseconds)
  values ('GET', net._encode_url_with_params_array(url, encoded), headers, timeout_milliseconds)
  returning id into request_id;

  return request_id;
end
$$;

create function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds int default 5000
)
returns bigint
language plpgsql
as $$
declare
  given_type text;
  encoded text[];
  request_id bigint;
begin
  select h.value into given_type
    from pg_catalog.jsonb_each_text(coalesce(headers, '{}'::jsonb)) as h
   where pg_catalog.lower(h.key) = 'content-type'
   limit 1;

  if given_type is null then
    -- headers given without a content type get the JSON one added
    headers := headers || '{"Content-Type": "application/json"}'::jsonb;
  elsif given_type <> 'application/json' then
    raise exception 'Content-Type header must be "application/json"';
  end if;

  select coalesce(pg_catalog.array_agg(net._urlencode_string(p.key) || '=' || net._urlencode_string(p.value)), '{}')
    into encoded
    from pg_catalog.jsonb_each_text(params) as p;

  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values ('POST', net._encode_url_with_params_array(url, encoded), headers,
          pg_catalog.convert_to(body::text, 'UTF8'), timeout_milliseconds)
  returning id into request_id;

  return request_id;
end
$$;

create function net.http_delete(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds int default 5000,
  body jsonb default null
)
returns bigint
language plpgsql
as $$
declare
  encoded text[];
  request_id bigint;
begin
  select coalesce(pg_catalog.array_agg(net._urlencode_string(p.key) || '=' || net._urlencode_string(p.value)), '{}')
    into encoded
    from pg_catalog.jsonb_each_text(params) as p;

  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values ('DELETE', net._encode_url_with_params_array(url, encoded), headers,
          pg_catalog.convert_to(body::text, 'UTF8'), timeout_milliseconds)
  returning id into request_id;

  return request_id;
end
$$;

create function net._http_collect_response(request_id bigint, async bool default true)
returns net.http_response_result
language plpgsql
as $$
declare
  r net._http_response;
begin
  if not async then
    perform net._await_response(request_id);
  end if;

  select * into r from net._http_response as x where x.id = request_id;

  if r.id is null then
    return row('ERROR', 'request matching request_id not found', null)::net.http_response_result;
  elsif r.error_msg is not null then
    return row('ERROR', r.error_msg, null)::net.http_response_result;
  end if;
  return row('SUCCESS', 'ok', row(r.status_code, r.headers, r.content)::net.http_response)::net.http_response_result;
end
$$;

create function net.http_collect_response(request_id bigint, async bool default true)
returns net.http_response_result
language plpgsql
as $$
begin
  raise notice 'The net.http_collect_response function is deprecated.';
  return net._http_collect_response(request_id, async);
end
$$;

-- Grants -------------------------------------------------------------------------------

-- pg_net's own
grant usage on schema net to public;
grant all on all sequences in schema net to public;
grant all on all tables in schema net to public;

-- Supabase's grant_pg_net_access, on a database that has the Supabase roles
do $grants$
declare
  fn text;
  grantees text;
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'authenticated') then
    return;
  end if;
  select pg_catalog.string_agg(pg_catalog.quote_ident(rolname), ', ')
    into grantees
    from pg_catalog.pg_roles
   where rolname in ('supabase_functions_admin', 'postgres', 'anon', 'authenticated', 'service_role');
  execute pg_catalog.format('grant usage on schema net to %s', grantees);
  foreach fn in array array[
    'net.http_get(text, jsonb, jsonb, integer)',
    'net.http_post(text, jsonb, jsonb, jsonb, integer)'
  ] loop
    execute pg_catalog.format('alter function %s security definer', fn);
    execute pg_catalog.format('alter function %s set search_path = net', fn);
    execute pg_catalog.format('revoke all on function %s from public', fn);
    execute pg_catalog.format('grant execute on function %s to %s', fn, grantees);
  end loop;
end
$grants$;
