-- Feedback can be inserted but not read back: insert().select() fails.
-- expect: insert-without-select public.feedback
-- expect: command-uncovered public.feedback
create table public.feedback (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id),
  body text
);
create index on public.feedback (organization_id);
alter table public.feedback enable row level security;
revoke update, delete on public.feedback from anon, authenticated;
create policy feedback_insert on public.feedback for insert to authenticated
  with check (organization_id in (select private.get_user_organization_ids((select auth.uid()))));
insert into public.feedback (organization_id, body) values ('aaaaaaaa-0000-0000-0000-000000000001', 'great'), ('bbbbbbbb-0000-0000-0000-000000000002', 'meh');
