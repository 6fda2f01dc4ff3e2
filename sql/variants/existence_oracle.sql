-- Members may add website domains to their organization. The INSERT policy is right (only
-- into one's own organizations), but hostnames are unique across all tenants: alice, adding
-- bob's hostname to Acme, gets "duplicate key" and learns that someone has it.
-- expect: existence-oracle public.domains
-- severity: warn existence-oracle public.domains
grant insert on public.domains to authenticated;
create policy domains_insert on public.domains
  for insert to authenticated
  with check (organization_id in (select private.get_user_organization_ids((select auth.uid()))));
