-- "Accept an invitation" written as an open INSERT policy: a user may add a membership for
-- themselves, in any organization. Every policy reads organization_members (through
-- private.get_user_organization_ids), so alice inserts herself into Globex and sees its
-- conversations. The isolation probes do not see it: a copy of one of Globex's memberships,
-- for another user, is refused; only a membership for oneself gets in.
-- expect: tenant-escalation public.organization_members
-- severity: error tenant-escalation public.organization_members
grant insert on public.organization_members to authenticated;
create policy members_join on public.organization_members
  for insert to authenticated
  with check (user_id = (select auth.uid()));
