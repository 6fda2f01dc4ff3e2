-- The same INSERT policy as existence_oracle.sql, with hostnames unique per organization: a
-- duplicate is one's own. Not a finding.
alter table public.domains drop constraint domains_hostname_key,
  add constraint domains_organization_id_hostname_key unique (organization_id, hostname);
grant insert on public.domains to authenticated;
create policy domains_insert on public.domains
  for insert to authenticated
  with check (organization_id in (select private.get_user_organization_ids((select auth.uid()))));
