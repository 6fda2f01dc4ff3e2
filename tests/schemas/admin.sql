-- Back-office tables only admins may touch: admins are listed in a table the API cannot
-- read, checked by a private is_admin() helper; invoices are written by the backend with
-- the service_role key. One policy trusts the role a user can write into their own
-- user_metadata, and the audit log was opened to "signed-in users" by mistake.
--
-- expect: info rls-no-policy public.admins  -- RLS on, no policy: the API can do nothing with it (read by the definer helper only)
-- clean: public.customers  -- every command needs (select private.is_admin())
-- clean: public.invoices  -- the only policy is TO service_role: the API roles reach no row
-- expect: error user-metadata-in-policy public.site_banners  -- "Editors manage banners" trusts user_metadata.role, which any user sets on themselves
-- expect: info policy-always-true public.site_banners  -- "Banners are public": a catalogue everyone reads
-- expect: error policy-always-true public.audit_log  -- USING (auth.role() = 'authenticated'): true for every signed-in user, who reads and deletes every entry
-- expect: warn definer-exposed public.grant_admin(p_user_id uuid)  -- RPC bypassing RLS; refuses unless the caller is an admin (private.is_admin() reads auth.uid())
-- clean: private.is_admin  -- helper outside the exposed schemas, search_path fixed

create schema if not exists private;
grant usage on schema private to authenticated;

create table public.admins (
  user_id uuid primary key references auth.users (id) on delete cascade,
  granted_at timestamptz not null default now()
);
alter table public.admins enable row level security;

create function private.is_admin() returns boolean
language sql stable security definer set search_path = ''
as $$ select exists (select 1 from public.admins a where a.user_id = (select auth.uid())) $$;

create table public.customers (
  id uuid primary key default gen_random_uuid(),
  email text not null unique,
  name text,
  stripe_customer_id text unique,
  created_at timestamptz not null default now()
);
alter table public.customers enable row level security;
create policy "Admins manage customers" on public.customers
  for all to authenticated
  using ((select private.is_admin())) with check ((select private.is_admin()));

create table public.invoices (
  id uuid primary key default gen_random_uuid(),
  customer_id uuid not null references public.customers (id) on delete cascade,
  amount_cents integer not null check (amount_cents >= 0),
  status text not null default 'open' check (status in ('open', 'paid', 'void')),
  issued_at timestamptz not null default now()
);
create index invoices_customer_id_idx on public.invoices (customer_id);
alter table public.invoices enable row level security;
create policy "Service role manages invoices" on public.invoices
  for all to service_role using (true) with check (true);

create table public.site_banners (
  id bigint generated always as identity primary key,
  message text not null,
  starts_at timestamptz not null default now(),
  ends_at timestamptz
);
alter table public.site_banners enable row level security;
create policy "Banners are public" on public.site_banners
  for select to anon, authenticated using (true);
create policy "Editors manage banners" on public.site_banners
  for all to authenticated
  using (((select auth.jwt()) -> 'user_metadata' ->> 'role') = 'editor')
  with check (((select auth.jwt()) -> 'user_metadata' ->> 'role') = 'editor');

create table public.audit_log (
  id bigint generated always as identity primary key,
  actor uuid references auth.users (id) on delete set null,
  action text not null,
  detail jsonb not null default '{}',
  at timestamptz not null default now()
);
create index audit_log_actor_idx on public.audit_log (actor);
alter table public.audit_log enable row level security;
revoke insert, update on public.audit_log from anon, authenticated;
create policy "Staff read the audit log" on public.audit_log
  for all to authenticated using ((select auth.role()) = 'authenticated');

create function public.grant_admin(p_user_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  if not private.is_admin() then
    raise exception 'only admins can grant admin' using errcode = '42501';
  end if;
  insert into public.admins (user_id) values (p_user_id) on conflict do nothing;
end
$$;
