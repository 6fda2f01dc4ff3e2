-- A blog with credits, written mostly through RPCs that run as their owner: some derive the
-- user from auth.uid() (as they should), some write by an id the caller passes, into the
-- platform's tables too (auth.users, storage.objects).
--
-- clean: public.accounts  -- each user reads and renames only their own account; credits move through RPCs
-- clean: public.posts  -- published posts are public, each author writes only their own
-- expect: warn definer-exposed public.create_post(p_title text, p_body text)  -- RPC bypassing RLS; the author is auth.uid(), never a parameter
-- expect: warn definer-exposed public.publish_post(p_post_id uuid)  -- RPC bypassing RLS; updates the post only where author_id = auth.uid()
-- expect: warn definer-exposed public.delete_my_account()  -- RPC bypassing RLS; deletes the caller's own user (auth.uid())
-- expect: error definer-exposed public.add_credits(p_user_id uuid, p_amount integer)  -- anyone adds credits to any account by id, never asks who calls
-- expect: error tenant-leak public.add_credits(p_user_id uuid, p_amount integer)  -- measured: alice changes bob's account
-- expect: error definer-exposed public.delete_post(post_id uuid)  -- anyone deletes any post by id
-- expect: error tenant-leak public.delete_post(post_id uuid)  -- measured: alice deletes bob's post by its id
-- expect: error definer-exposed public.remove_attachment(p_path text)  -- anyone deletes any stored file of the bucket by its path
-- expect: error definer-exposed public.create_guest_user(p_email text)  -- anyone creates a user in auth.users
-- clean: public.format_handle(p_user_id uuid, p_name text)  -- SECURITY DEFINER, takes a user id, but reads and writes no table
-- clean: public.create_account_for_new_user  -- trigger function on auth.users, not callable as an RPC

create table public.accounts (
  id uuid primary key references auth.users (id) on delete cascade,
  display_name text not null default '',
  credits integer not null default 0 check (credits >= 0)
);
alter table public.accounts enable row level security;
revoke insert, delete on public.accounts from anon, authenticated;
revoke update on public.accounts from anon, authenticated;
grant update (display_name) on public.accounts to authenticated;
create policy "Users read their account" on public.accounts
  for select to authenticated using (id = (select auth.uid()));
create policy "Users rename their account" on public.accounts
  for update to authenticated using (id = (select auth.uid())) with check (id = (select auth.uid()));

create function public.create_account_for_new_user() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.accounts (id, display_name) values (new.id, split_part(new.email, '@', 1));
  return new;
end
$$;
create trigger create_account_for_new_user after insert on auth.users
  for each row execute function public.create_account_for_new_user();

create table public.posts (
  id uuid primary key default gen_random_uuid(),
  author_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  title text not null,
  body text not null default '',
  attachment_path text,
  published boolean not null default false,
  created_at timestamptz not null default now()
);
create index posts_author_id_idx on public.posts (author_id);
alter table public.posts enable row level security;
create policy "Published posts are public" on public.posts
  for select using (published or author_id = (select auth.uid()));
create policy "Authors write their posts" on public.posts
  for insert to authenticated with check (author_id = (select auth.uid()));
create policy "Authors edit their posts" on public.posts
  for update to authenticated using (author_id = (select auth.uid())) with check (author_id = (select auth.uid()));
create policy "Authors delete their posts" on public.posts
  for delete to authenticated using (author_id = (select auth.uid()));

insert into storage.buckets (id, name, public) values ('attachments', 'attachments', false);

create function public.create_post(p_title text, p_body text) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  new_id uuid;
begin
  insert into public.posts (author_id, title, body) values ((select auth.uid()), p_title, p_body)
  returning id into new_id;
  return new_id;
end
$$;

create function public.publish_post(p_post_id uuid) returns void
language sql security definer set search_path = ''
as $$ update public.posts set published = true where id = p_post_id and author_id = (select auth.uid()) $$;

create function public.delete_my_account() returns void
language sql security definer set search_path = ''
as $$ delete from auth.users where id = (select auth.uid()) $$;

create function public.add_credits(p_user_id uuid, p_amount integer) returns integer
language sql security definer set search_path = ''
as $$ update public.accounts set credits = credits + p_amount where id = p_user_id returning credits $$;

create function public.delete_post(post_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  delete from public.posts where id = post_id;
end
$$;

create function public.remove_attachment(p_path text) returns void
language sql security definer set search_path = ''
as $$ delete from storage.objects where bucket_id = 'attachments' and name = p_path $$;

create function public.create_guest_user(p_email text) returns uuid
language sql security definer set search_path = ''
as $$
  insert into auth.users (id, email, aud, role)
  values (gen_random_uuid(), lower(p_email), 'authenticated', 'authenticated')
  returning id
$$;

create function public.format_handle(p_user_id uuid, p_name text) returns text
language plpgsql immutable security definer set search_path = ''
as $$
begin
  return '@' || lower(regexp_replace(p_name, '[^a-zA-Z0-9]+', '', 'g')) || '-' || left(p_user_id::text, 4);
end
$$;
