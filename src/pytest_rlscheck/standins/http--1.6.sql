-- rlscheck stand-in for http (pgsql-http) 1.6 (written for pytest-rlscheck; no curl).
--
-- The types and functions of pgsql-http with their signatures, so that functions and
-- views that use them are created as on Supabase. Everything that would send a request
-- (http() and the http_<method>() shorthands) raises SQLSTATE 0A000 saying so, with the
-- method and URL in the DETAIL. What needs no network works for real: http_header(),
-- urlencode(), text_to_bytea(), bytea_to_text() and the curl options of the session
-- (http_set_curlopt / http_list_curlopt / http_reset_curlopt, which only remember them).

create domain http_method as text;

create domain content_type as text
  check (value ~ '^\S+\/\S+');

create type http_header as (
  field varchar,
  value varchar
);

create type http_response as (
  status integer,
  content_type varchar,
  headers http_header[],
  content varchar
);

create type http_request as (
  method http_method,
  uri varchar,
  headers http_header[],
  content_type varchar,
  content varchar
);

-- Session curl options: kept (for http_list_curlopt), never used -----------------------

create function http_set_curlopt(curlopt varchar, value varchar)
returns boolean
language plpgsql
as $$
declare
  known constant text[] := array[
    'CURLOPT_CAINFO', 'CURLOPT_TIMEOUT', 'CURLOPT_TIMEOUT_MS', 'CURLOPT_CONNECTTIMEOUT',
    'CURLOPT_CONNECTTIMEOUT_MS', 'CURLOPT_USERAGENT', 'CURLOPT_USERPWD', 'CURLOPT_IPRESOLVE',
    'CURLOPT_SSLCERTTYPE', 'CURLOPT_PROXY', 'CURLOPT_PROXYPORT', 'CURLOPT_PROXYUSERNAME',
    'CURLOPT_PROXYPASSWORD', 'CURLOPT_TLSAUTH_USERNAME', 'CURLOPT_TLSAUTH_PASSWORD',
    'CURLOPT_TLSAUTH_TYPE', 'CURLOPT_DNS_SERVERS', 'CURLOPT_TCP_KEEPALIVE', 'CURLOPT_TCP_KEEPIDLE',
    'CURLOPT_SSL_VERIFYHOST', 'CURLOPT_SSL_VERIFYPEER', 'CURLOPT_SSLCERT', 'CURLOPT_SSLKEY',
    'CURLOPT_PRE_PROXY', 'CURLOPT_PROXY_CAINFO', 'CURLOPT_PROXY_TLSAUTH_USERNAME',
    'CURLOPT_PROXY_TLSAUTH_PASSWORD', 'CURLOPT_PROXY_TLSAUTH_TYPE', 'CURLOPT_SSLKEY_BLOB',
    'CURLOPT_SSLCERT_BLOB'];
  opt text;
  current jsonb;
begin
  if curlopt is null or value is null then
    return false;
  end if;
  opt := pg_catalog.upper(curlopt);
  if not opt = any (known) then
    raise exception 'curl option ''%'' is not available for run-time configuration', curlopt;
  end if;
  current := coalesce(nullif(pg_catalog.current_setting('rlscheck_http.curlopts', true), ''), '{}')::jsonb;
  perform pg_catalog.set_config('rlscheck_http.curlopts',
                                (current || pg_catalog.jsonb_build_object(opt, value::text))::text, false);
  return true;
end
$$;

create function http_reset_curlopt()
returns boolean
language sql
as $$ select pg_catalog.set_config('rlscheck_http.curlopts', '{}', false) is not null $$;

create function http_list_curlopt()
returns table(curlopt text, value text)
language sql
as $$
  select o.key, o.value
    from pg_catalog.jsonb_each_text(
           coalesce(nullif(pg_catalog.current_setting('rlscheck_http.curlopts', true), ''), '{}')::jsonb) as o
$$;

-- What works without a network ---------------------------------------------------------

create function http_header(field varchar, value varchar)
returns http_header
language sql
as $$ select $1, $2 $$;

-- form encoding: unreserved characters pass, ' ' becomes '+', the rest %XX (bytes)
create function urlencode(string bytea)
returns text
language sql
immutable strict
as $$
  select coalesce(pg_catalog.string_agg(
           case
             when b = 32 then '+'
             when b between 48 and 57 or b between 65 and 90 or b between 97 and 122
                  or b in (45, 46, 95, 126)
               then pg_catalog.chr(b)
             else '%' || pg_catalog.upper(pg_catalog.lpad(pg_catalog.to_hex(b), 2, '0'))
           end,
           '' order by i), '')
    from pg_catalog.generate_series(0, pg_catalog.length(string) - 1) as i,
         pg_catalog.get_byte(string, i) as b
$$;

create function urlencode(string varchar)
returns text
language sql
immutable strict
as $$ select @extschema@.urlencode(pg_catalog.convert_to(string, pg_catalog.getdatabaseencoding()::text)) $$;

-- key=value&... of an object's scalar members (nested values and empty keys are left out)
create function urlencode(data jsonb)
returns text
language plpgsql
immutable strict
as $$
declare
  result text := '';
  member record;
  value text;
begin
  if pg_catalog.jsonb_typeof(data) <> 'object' then
    raise exception using errcode = '22023', message = 'cannot call urlencode_jsonb on a non-object';
  end if;
  for member in select * from pg_catalog.jsonb_each(data) loop
    continue when member.key = '';
    value := case pg_catalog.jsonb_typeof(member.value)
               when 'string' then member.value #>> '{}'
               when 'number' then pg_catalog.trim_scale((member.value #>> '{}')::numeric)::text
               when 'boolean' then member.value #>> '{}'
               when 'null' then ''
             end;
    continue when value is null;
    result := result || case when result = '' then '' else '&' end
              || @extschema@.urlencode(member.key::varchar) || '=' || @extschema@.urlencode(value::varchar);
  end loop;
  return result;
end
$$;

create function text_to_bytea(data text)
returns bytea
language sql
immutable strict
as $$ select pg_catalog.convert_to(data, pg_catalog.getdatabaseencoding()::text) $$;

create function bytea_to_text(data bytea)
returns text
language sql
immutable strict
as $$ select pg_catalog.convert_from(data, pg_catalog.getdatabaseencoding()::text) $$;

-- What would send a request -------------------------------------------------------------

create function http(request http_request)
returns http_response
language plpgsql
as $$
begin
  raise exception using
    errcode = '0A000',
    message = 'http(): the http extension is a stand-in under pytest-rlscheck; no HTTP request is sent in tests',
    detail = pg_catalog.format('The request would have been: %s %s', (request).method, (request).uri),
    hint = 'Replace the function that makes the request inside the test, or keep it out of the tested path.';
end
$$;

create function http_get(uri varchar)
returns http_response
language plpgsql
as $$
begin
  raise exception using
    errcode = '0A000',
    message = 'http_get(): the http extension is a stand-in under pytest-rlscheck; no HTTP request is sent in tests',
    detail = pg_catalog.format('The request would have been: %s %s', 'GET', uri),
    hint = 'Replace the function that makes the request inside the test, or keep it out of the tested path.';
end
$$;

create function http_post(uri varchar, content varchar, content_type varchar)
returns http_response
language plpgsql
as $$
begin
  raise exception using
    errcode = '0A000',
    message = 'http_post(): the http extension is a stand-in under pytest-rlscheck; no HTTP request is sent in tests',
    detail = pg_catalog.format('The request would have been: %s %s', 'POST', uri),
    hint = 'Replace the function that makes the request inside the test, or keep it out of the tested path.';
end
$$;

create function http_put(uri varchar, content varchar, content_type varchar)
returns http_response
language plpgsql
as $$
begin
  raise exception using
    errcode = '0A000',
    message = 'http_put(): the http extension is a stand-in under pytest-rlscheck; no HTTP request is sent in tests',
    detail = pg_catalog.format('The request would have been: %s %s', 'PUT', uri),
    hint = 'Replace the function that makes the request inside the test, or keep it out of the tested path.';
end
$$;

create function http_patch(uri varchar, content varchar, content_type varchar)
returns http_response
language plpgsql
as $$
begin
  raise exception using
    errcode = '0A000',
    message = 'http_patch(): the http extension is a stand-in under pytest-rlscheck; no HTTP request is sent in tests',
    detail = pg_catalog.format('The request would have been: %s %s', 'PATCH', uri),
    hint = 'Replace the function that makes the request inside the test, or keep it out of the tested path.';
end
$$;

create function http_delete(uri varchar)
returns http_response
language plpgsql
as $$
begin
  raise exception using
    errcode = '0A000',
    message = 'http_delete(): the http extension is a stand-in under pytest-rlscheck; no HTTP request is sent in tests',
    detail = pg_catalog.format('The request would have been: %s %s', 'DELETE', uri),
    hint = 'Replace the function that makes the request inside the test, or keep it out of the tested path.';
end
$$;

create function http_delete(uri varchar, content varchar, content_type varchar)
returns http_response
language plpgsql
as $$
begin
  raise exception using
    errcode = '0A000',
    message = 'http_delete(): the http extension is a stand-in under pytest-rlscheck; no HTTP request is sent in tests',
    detail = pg_catalog.format('The request would have been: %s %s', 'DELETE', uri),
    hint = 'Replace the function that makes the request inside the test, or keep it out of the tested path.';
end
$$;

create function http_head(uri varchar)
returns http_response
language plpgsql
as $$
begin
  raise exception using
    errcode = '0A000',
    message = 'http_head(): the http extension is a stand-in under pytest-rlscheck; no HTTP request is sent in tests',
    detail = pg_catalog.format('The request would have been: %s %s', 'HEAD', uri),
    hint = 'Replace the function that makes the request inside the test, or keep it out of the tested path.';
end
$$;

create function http_get(uri varchar, data jsonb)
returns http_response
language plpgsql
as $$
begin
  raise exception using
    errcode = '0A000',
    message = 'http_get(): the http extension is a stand-in under pytest-rlscheck; no HTTP request is sent in tests',
    detail = pg_catalog.format('The request would have been: %s %s', 'GET', uri || '?' || @extschema@.urlencode(data)),
    hint = 'Replace the function that makes the request inside the test, or keep it out of the tested path.';
end
$$;

create function http_post(uri varchar, data jsonb)
returns http_response
language plpgsql
as $$
begin
  raise exception using
    errcode = '0A000',
    message = 'http_post(): the http extension is a stand-in under pytest-rlscheck; no HTTP request is sent in tests',
    detail = pg_catalog.format('The request would have been: %s %s', 'POST', uri),
    hint = 'Replace the function that makes the request inside the test, or keep it out of the tested path.';
end
$$;
