-- Members may edit their own membership row (say, a notification setting), and the UPDATE
-- policy checks only whose row it is: alice, a plain member, sets her role to 'admin' and
-- can then delete Acme's conversations, which only admins may.
-- expect: tenant-escalation public.organization_members
update public.organization_members set role = 'member'
  where user_id = '11111111-1111-1111-1111-111111111111';
grant update (role) on public.organization_members to authenticated;
create policy members_update_own on public.organization_members
  for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
alter policy conversations_delete on public.conversations
  using (organization_id in (
    select m.organization_id from public.organization_members m
    where m.user_id = (select auth.uid()) and m.role in ('owner', 'admin')
  ));
