-- Per-user notes: no tenant column, each row belongs to the user in user_id (the column the
-- policies compare with auth.uid()). Everyone may read every note (by design, say), but the
-- UPDATE policy only asks for a signed-in user: anyone can rewrite anyone's notes.
-- expect: tenant-leak public.notes
-- severity: error tenant-leak public.notes
-- expect: policy-always-true public.notes
-- severity: error policy-always-true public.notes
create table public.notes (
  id bigint generated always as identity primary key,
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  body text not null
);
create index on public.notes (user_id);
alter table public.notes enable row level security;
create policy notes_select on public.notes for select to authenticated
  using ((select auth.uid()) is not null);
create policy notes_insert on public.notes for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy notes_update on public.notes for update to authenticated
  using ((select auth.uid()) is not null) with check ((select auth.uid()) is not null);
create policy notes_delete on public.notes for delete to authenticated
  using (user_id = (select auth.uid()));
insert into public.notes (user_id, body) select id, 'note of ' || email from auth.users;
