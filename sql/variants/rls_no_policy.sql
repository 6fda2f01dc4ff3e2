-- RLS switched on, no policy written: the API can do nothing with the table.
-- expect: rls-no-policy public.secrets
create table public.secrets (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id),
  value text
);
create index on public.secrets (organization_id);
alter table public.secrets enable row level security;
