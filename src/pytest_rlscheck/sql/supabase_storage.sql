-- rlscheck Supabase shim: the parts of the storage schema that application migrations
-- reference (buckets, objects and the path helpers used in storage policies).

create schema if not exists storage;
grant usage on schema storage to anon, authenticated, service_role;

create table if not exists storage.buckets (
  id text primary key,
  name text not null unique,
  owner uuid,
  owner_id text,
  public boolean default false,
  avif_autodetection boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);

create table if not exists storage.objects (
  id uuid primary key default gen_random_uuid(),
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,
  owner_id text,
  metadata jsonb,
  user_metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  version text,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now()
);
create unique index if not exists bucketid_objname on storage.objects (bucket_id, name);

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;
grant all on storage.buckets, storage.objects to anon, authenticated, service_role;

create or replace function storage.foldername(name text)
returns text[]
language sql immutable
as $$
  select (string_to_array(name, '/'))[1:cardinality(string_to_array(name, '/')) - 1]
$$;

create or replace function storage.filename(name text)
returns text
language sql immutable
as $$
  select (string_to_array(name, '/'))[cardinality(string_to_array(name, '/'))]
$$;

create or replace function storage.extension(name text)
returns text
language sql immutable
as $$
  select reverse(split_part(reverse(storage.filename(name)), '.', 1))
$$;

-- ownership as on Supabase: the tables and functions are supabase_storage_admin's, and
-- postgres (the project's role) may use and write them, but not alter them (policies on
-- them it may create: supautils' policy_grants, which the migration runner follows). A role
-- that may not hand objects over (a --rlscheck-dsn role) keeps them.
do $shim$
declare
  r record;
  is_super boolean := (select rolsuper from pg_catalog.pg_roles where rolname = current_user);
begin
  grant all on schema storage to supabase_storage_admin;
  if is_super or pg_catalog.pg_has_role(current_user, 'supabase_storage_admin', 'MEMBER') then
    begin
      alter table storage.buckets owner to supabase_storage_admin;
      alter table storage.objects owner to supabase_storage_admin;
      for r in
        select p.oid::regprocedure as fn from pg_catalog.pg_proc p where p.pronamespace = 'storage'::regnamespace
      loop
        execute format('alter function %s owner to supabase_storage_admin', r.fn);
      end loop;
    exception when insufficient_privilege then
      raise notice 'rlscheck shim: % keeps ownership of the storage schema''s objects', current_user;
    end;
  end if;
  if to_regrole('postgres') is not null
     and (select c.relowner from pg_catalog.pg_class c where c.oid = 'storage.objects'::regclass) <> 'postgres'::regrole then
    grant usage on schema storage to postgres;
    grant all on all tables in schema storage to postgres;
    grant all on all sequences in schema storage to postgres;
    grant all on all routines in schema storage to postgres;
  end if;
end
$shim$;
