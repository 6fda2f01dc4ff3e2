create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  avatar_path text
);
alter table public.profiles enable row level security;
create policy "profiles are public" on public.profiles for select using (true);
create policy "users edit their profile" on public.profiles for update to authenticated
  using ((select auth.uid()) = id) with check ((select auth.uid()) = id);
