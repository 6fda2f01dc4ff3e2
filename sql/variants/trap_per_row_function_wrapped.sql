-- The membership check as a STABLE plpgsql set of the caller's organizations, compared with
-- organization_id: a hashed SubPlan (conversations) and an InitPlan (messages), each calling
-- it once per statement, in the seed's plan and with the scan forced. Text matching sees a call
-- outside ( SELECT f() ) in the first; PostgreSQL counts one call. Not a finding.
create function private.my_orgs() returns setof uuid
language plpgsql stable
set search_path = ''
as $$
begin
  return query select m.organization_id from public.organization_members m where m.user_id = auth.uid();
end;
$$;
alter policy conversations_select on public.conversations
  using (organization_id in (select o from private.my_orgs() as o));
alter policy messages_select on public.messages
  using (organization_id = any (array(select private.my_orgs())));
