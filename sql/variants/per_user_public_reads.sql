-- Supabase's quickstart profiles: everyone reads every profile, each user writes only their
-- own; an owner column that may be NULL by design (the author of a shared catalogue entry).
-- Per-user isolation holds for writes and reads are public on purpose: no tenant-leak, and no
-- tenant-column-nullable for the owner column. Only the literal USING (true) is reported.
-- expect: policy-always-true public.user_profiles
-- (public on purpose: reported at info, never failing the run)
-- severity: info policy-always-true public.user_profiles
create table public.user_profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  username text unique,
  updated_at timestamptz
);
alter table public.user_profiles enable row level security;
create policy "Public profiles are viewable by everyone." on public.user_profiles
  for select to anon, authenticated using (true);
create policy "Users can insert their own profile." on public.user_profiles
  for insert to authenticated with check ((select auth.uid()) = id);
create policy "Users can update own profile." on public.user_profiles
  for update to authenticated using ((select auth.uid()) = id) with check ((select auth.uid()) = id);
revoke delete, truncate on public.user_profiles from anon, authenticated;
revoke insert, update on public.user_profiles from anon;
insert into public.user_profiles (id, username) select id, split_part(email, '@', 1) from auth.users;
create table public.exercises (
  id bigint generated always as identity primary key,
  name text not null,
  is_public boolean not null default false,
  created_by uuid default auth.uid() references auth.users (id) on delete set null
);
create index on public.exercises (created_by);
alter table public.exercises enable row level security;
create policy exercises_read on public.exercises for select to authenticated
  using (is_public or created_by = (select auth.uid()));
create policy exercises_write on public.exercises for insert to authenticated
  with check (created_by = (select auth.uid()));
create policy exercises_update on public.exercises for update to authenticated
  using (created_by = (select auth.uid())) with check (created_by = (select auth.uid()));
create policy exercises_delete on public.exercises for delete to authenticated
  using (created_by = (select auth.uid()));
revoke all on public.exercises from anon;
insert into public.exercises (name, is_public, created_by)
select 'squat of ' || email, true, id from auth.users;
-- A function over the public profiles: its rows are everyone's by design too.
create function public.list_profiles() returns setof public.user_profiles
language sql stable as $$ select * from public.user_profiles $$;
