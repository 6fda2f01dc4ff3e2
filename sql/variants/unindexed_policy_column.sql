-- Bookmarks filtered by user_id in every policy, and no index on user_id.
-- expect: unindexed-policy-column public.bookmarks
create table public.bookmarks (
  id bigint generated always as identity primary key,
  user_id uuid not null default auth.uid(),
  url text not null
);
alter table public.bookmarks enable row level security;
create policy bookmarks_own on public.bookmarks for all to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
insert into public.bookmarks (user_id, url)
select id, 'https://example.test/' || email from auth.users;
