-- RLS switched on, no policy written: the API can do nothing with the table.
-- expect: rls-no-policy public.secrets
create table public.secrets (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id),
  value text
);
create index on public.secrets (organization_id);
alter table public.secrets enable row level security;
insert into public.secrets (organization_id, value) values ('aaaaaaaa-0000-0000-0000-000000000001', 'a-key'), ('bbbbbbbb-0000-0000-0000-000000000002', 'b-key');
