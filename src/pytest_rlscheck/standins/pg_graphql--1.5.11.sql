-- rlscheck stand-in for pg_graphql 1.5.11 (written for pytest-rlscheck; no Rust engine).
--
-- The graphql schema's public face: graphql.resolve() with its signature, the schema
-- version sequence and its event triggers, graphql.comment_directive() and
-- graphql.exception(). graphql.resolve() answers every query with a GraphQL error
-- response ({"errors": [{"message": ...}]}) saying that queries are not resolved here;
-- it never raises, like the real one.
--
-- Grants: on a database with the Supabase roles, what Supabase's grant_pg_graphql_access
-- event trigger grants when graphql.resolve is created. The graphql_public schema and its
-- graphql() wrapper belong to the Supabase platform, not to this extension, and are not
-- created here.

-- Bumped on every DDL command; the real engine uses it to know when to reload its cache.
create sequence if not exists graphql.seq_schema_version as int cycle;

create function graphql.increment_schema_version()
returns event_trigger
security definer
language plpgsql
as $$
begin
  perform pg_catalog.nextval('graphql.seq_schema_version');
end
$$;

create function graphql.get_schema_version()
returns int
security definer
language sql
as $$ select last_value from graphql.seq_schema_version $$;

create event trigger graphql_watch_ddl
  on ddl_command_end
  execute procedure graphql.increment_schema_version();

create event trigger graphql_watch_drop
  on sql_drop
  execute procedure graphql.increment_schema_version();

-- The @graphql({...}) directive of a comment, as jsonb ({} when there is none).
create function graphql.comment_directive(comment_ text)
returns jsonb
language sql
immutable
as $$
  select coalesce((pg_catalog.regexp_match(comment_, '@graphql\((.+)\)'))[1]::jsonb, '{}'::jsonb)
$$;

create function graphql.exception(message text)
returns text
language plpgsql
as $$
begin
  raise exception using errcode = '22000', message = message;
end
$$;

-- The engine. The real one parses the query and runs it against the reflected schema.
create function graphql._internal_resolve(
  query text,
  variables jsonb default '{}',
  "operationName" text default null,
  extensions jsonb default null
)
returns jsonb
language sql
as $$
  select pg_catalog.jsonb_build_object(
    'errors', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'message', 'pg_graphql is a stand-in under pytest-rlscheck: GraphQL queries are not resolved in tests')))
$$;

create function graphql.resolve(
  query text,
  variables jsonb default '{}',
  "operationName" text default null,
  extensions jsonb default null
)
returns jsonb
language plpgsql
as $$
declare
  answer jsonb;
  failure text;
begin
  begin
    answer := graphql._internal_resolve(
      query := query, variables := variables, "operationName" := "operationName", extensions := extensions);
    return answer;
  exception when others then
    -- like the real one: an error inside the engine becomes a GraphQL error response
    get stacked diagnostics failure = message_text;
    return pg_catalog.jsonb_build_object(
      'data', null,
      'errors', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('message', failure)));
  end;
end
$$;

-- Supabase's grant_pg_graphql_access, on a database that has the Supabase roles
do $grants$
declare
  grantees text;
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'authenticated') then
    return;
  end if;
  select pg_catalog.string_agg(pg_catalog.quote_ident(rolname), ', ')
    into grantees
    from pg_catalog.pg_roles
   where rolname in ('postgres', 'anon', 'authenticated', 'service_role');
  execute pg_catalog.format('grant usage on schema graphql to %s', grantees);
  execute pg_catalog.format('grant select on all tables in schema graphql to %s', grantees);
  execute pg_catalog.format('grant execute on all functions in schema graphql to %s', grantees);
  execute pg_catalog.format('grant all on all sequences in schema graphql to %s', grantees);
  execute pg_catalog.format('alter default privileges in schema graphql grant all on tables to %s', grantees);
  execute pg_catalog.format('alter default privileges in schema graphql grant all on functions to %s', grantees);
  execute pg_catalog.format('alter default privileges in schema graphql grant all on sequences to %s', grantees);
  if exists (select from pg_catalog.pg_roles where rolname = 'postgres') then
    grant usage on schema graphql to postgres with grant option;
    if exists (select from pg_catalog.pg_namespace where nspname = 'graphql_public') then
      grant usage on schema graphql_public to postgres with grant option;
    end if;
  end if;
end
$grants$;
