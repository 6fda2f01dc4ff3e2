-- A chat whose messages are broadcast through Supabase Realtime.
create table public.messages (
  id bigint generated always as identity primary key,
  author_id uuid not null default auth.uid(),
  body text not null check (length(body) between 1 and 2000)
);
create index messages_author_id_idx on public.messages (author_id);
alter table public.messages enable row level security;
create policy "authors read their messages" on public.messages for select to authenticated
  using ((select auth.uid()) = author_id);
create policy "authors write" on public.messages for insert to authenticated
  with check ((select auth.uid()) = author_id);

alter publication supabase_realtime add table public.messages;
alter table public.messages replica identity full;
