-- Per-user data, as the Supabase quickstart starts it: a public profile per user made by a
-- trigger on auth.users, private settings, and notifications the backend sends (a trigger
-- refuses rows not written with the service_role key, so no row can be made for it).
--
-- clean: public.profiles  -- each user writes only their own profile
-- expect: info policy-always-true public.profiles  -- "Public profiles are viewable by everyone": every user's profile is public by design
-- clean: public.user_settings  -- read and insert by the owner only; the UPDATE policy reaches no row
-- expect: info policy-always-true public.user_settings  -- UPDATE with only WITH CHECK (true), no USING: PostgreSQL reaches no row through it
-- expect: warn auth-per-row public.notifications  -- USING (user_id = auth.uid()) unwrapped; no row to measure on: from the policy, not measured
-- expect: error tenant-leak storage.objects  -- "Signed-in users read documents": any signed-in user reads every user's files in the private documents bucket
-- clean: public.bookmarks  -- the owner compared with the JWT's sub, read once per statement: private to each user
-- expect: warn definer-search-path public.username_available(p_username text)  -- SECURITY DEFINER without a fixed search_path
-- expect: warn definer-exposed public.username_available(p_username text)  -- an RPC that bypasses RLS to read profiles (public anyway): no id, no write
-- clean: public.direct_messages  -- read by sender and recipient only; sent only as oneself, to anyone (that is what messaging is)
-- clean: public.handle_new_user  -- trigger function (not callable as an RPC): inserts the new user's own profile
-- clean: private.only_backend  -- trigger function outside the exposed schemas

create schema if not exists private;

create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  username text unique check (char_length(username) >= 3),
  full_name text,
  avatar_url text,
  updated_at timestamptz
);
alter table public.profiles enable row level security;
create policy "Public profiles are viewable by everyone." on public.profiles
  for select using (true);
create policy "Users can insert their own profile." on public.profiles
  for insert with check ((select auth.uid()) = id);
create policy "Users can update own profile." on public.profiles
  for update using ((select auth.uid()) = id);

create function public.handle_new_user() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.profiles (id, full_name, avatar_url)
  values (new.id, new.raw_user_meta_data ->> 'full_name', new.raw_user_meta_data ->> 'avatar_url');
  return new;
end;
$$;
create trigger on_auth_user_created after insert on auth.users
  for each row execute procedure public.handle_new_user();

create table public.user_settings (
  user_id uuid primary key references auth.users (id) on delete cascade,
  theme text not null default 'system' check (theme in ('light', 'dark', 'system')),
  email_notifications boolean not null default true
);
alter table public.user_settings enable row level security;
create policy "Users read their settings" on public.user_settings
  for select to authenticated using (user_id = (select auth.uid()));
create policy "Users create their settings" on public.user_settings
  for insert to authenticated with check (user_id = (select auth.uid()));
create policy "Users update their settings" on public.user_settings
  for update to authenticated with check (true);

create table public.bookmarks (
  id bigint generated always as identity primary key,
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  url text not null,
  created_at timestamptz not null default now()
);
create index bookmarks_user_id_idx on public.bookmarks (user_id);
alter table public.bookmarks enable row level security;
create policy "Users manage their bookmarks" on public.bookmarks
  for all to authenticated
  using (user_id = (select (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')::uuid))
  with check (user_id = (select (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')::uuid));

create table public.direct_messages (
  id bigint generated always as identity primary key,
  sender_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  recipient_id uuid not null references auth.users (id) on delete cascade,
  body text not null check (char_length(body) between 1 and 2000),
  sent_at timestamptz not null default now(),
  read_at timestamptz
);
create index direct_messages_sender_id_idx on public.direct_messages (sender_id);
create index direct_messages_recipient_id_idx on public.direct_messages (recipient_id);
alter table public.direct_messages enable row level security;
revoke update, delete on public.direct_messages from anon, authenticated;
create policy "Participants read their messages" on public.direct_messages
  for select to authenticated
  using ((select auth.uid()) in (sender_id, recipient_id));
create policy "Users send messages as themselves" on public.direct_messages
  for insert to authenticated with check (sender_id = (select auth.uid()));

create function public.username_available(p_username text) returns boolean
language sql stable security definer
as $$ select not exists (select 1 from public.profiles where lower(username) = lower(p_username)) $$;

create table public.notifications (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  body text not null,
  read_at timestamptz,
  created_at timestamptz not null default now()
);
create index notifications_user_id_idx on public.notifications (user_id);

create function private.only_backend() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if coalesce(current_setting('request.jwt.claims', true)::jsonb ->> 'role', '') <> 'service_role' then
    raise exception 'notifications are sent by the backend';
  end if;
  return new;
end
$$;
create trigger only_backend before insert on public.notifications
  for each row execute function private.only_backend();

alter table public.notifications enable row level security;
create policy "Users read their notifications" on public.notifications
  for select to authenticated using (user_id = auth.uid());
create policy "Users mark their notifications read" on public.notifications
  for update to authenticated using (user_id = auth.uid()) with check (user_id = auth.uid());

-- Avatars in a public bucket, each user writing in their own folder; private documents
-- that are meant to be read by their owner only.
insert into storage.buckets (id, name, public) values ('avatars', 'avatars', true), ('documents', 'documents', false);
create policy "Avatar images are publicly accessible" on storage.objects
  for select using (bucket_id = 'avatars');
create policy "Users upload their avatar" on storage.objects
  for insert to authenticated
  with check (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text);
create policy "Users upload their documents" on storage.objects
  for insert to authenticated
  with check (bucket_id = 'documents' and (storage.foldername(name))[1] = (select auth.uid())::text);
create policy "Signed-in users read documents" on storage.objects
  for select to authenticated using (bucket_id = 'documents');
create policy "Users delete their documents" on storage.objects
  for delete to authenticated
  using (bucket_id = 'documents' and (storage.foldername(name))[1] = (select auth.uid())::text);
