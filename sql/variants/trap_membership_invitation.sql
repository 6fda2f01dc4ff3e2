-- Joining an organization needs an invitation: the INSERT policy's WITH CHECK admits a
-- membership only where the user holds one (for the role it names). Alice holds none for
-- Globex, so her insert is refused. Not a finding.
create table private.invitations (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('admin', 'member')),
  primary key (organization_id, user_id)
);
alter table private.invitations enable row level security;
grant select on private.invitations to authenticated;
create policy invitee_reads on private.invitations for select to authenticated
  using (user_id = (select auth.uid()));
grant insert on public.organization_members to authenticated;
create policy members_accept_invitation on public.organization_members
  for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and exists (select 1 from private.invitations i
                where i.organization_id = organization_members.organization_id
                  and i.user_id = (select auth.uid())
                  and i.role = organization_members.role)
  );
