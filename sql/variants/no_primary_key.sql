-- An event log without a primary key.
-- expect: no-primary-key public.events
create table public.events (
  organization_id uuid not null,
  kind text not null,
  at timestamptz not null default now()
);
create index on public.events (organization_id);
alter table public.events enable row level security;
create policy events_own on public.events for all to authenticated
  using (organization_id in (select private.get_user_organization_ids((select auth.uid()))))
  with check (organization_id in (select private.get_user_organization_ids((select auth.uid()))));
insert into public.events (organization_id, kind) values ('aaaaaaaa-0000-0000-0000-000000000001', 'signup'), ('bbbbbbbb-0000-0000-0000-000000000002', 'signup');
