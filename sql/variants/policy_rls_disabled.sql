-- The policy is written, but RLS was never enabled: it does nothing.
-- expect: policy-rls-disabled public.tags
-- expect: rls-disabled public.tags
create table public.tags (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id),
  label text
);
create index on public.tags (organization_id);
create policy tags_select on public.tags for select to authenticated
  using (organization_id in (select private.get_user_organization_ids((select auth.uid()))));
