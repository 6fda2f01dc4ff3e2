-- A new table the API roles can reach (Supabase's default privileges), RLS never enabled.
-- expect: rls-disabled public.audit_log
create table public.audit_log (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id),
  note text
);
create index on public.audit_log (organization_id);
