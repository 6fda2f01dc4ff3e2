create extension if not exists plv8 with schema pg_catalog;

create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  username text not null,
  slug text
);

alter table public.profiles enable row level security;

create policy "profiles are public" on public.profiles for select to anon, authenticated using (true);

create policy "users edit their profile" on public.profiles
  for update to authenticated
  using (id = (select auth.uid()))
  with check (id = (select auth.uid()));
