-- RPCs that take a tenant id or a row's id, bypass RLS, and check the caller first: one
-- raises for a non-member, one returns nothing, one updates only the caller's tenant's rows.
-- Called with the other tenant's ids they give nothing away: definer-exposed warns (they are
-- RPC endpoints that bypass RLS), tenant-leak finds nothing.
-- expect: definer-exposed public.org_conversations_checked(p_org_id uuid)
-- severity: warn definer-exposed public.org_conversations_checked(p_org_id uuid)
-- expect: definer-exposed public.org_conversations_if_member(p_org_id uuid)
-- severity: warn definer-exposed public.org_conversations_if_member(p_org_id uuid)
-- expect: definer-exposed public.reopen_conversation(p_conversation_id uuid)
create function public.org_conversations_checked(p_org_id uuid) returns setof public.conversations
language plpgsql stable security definer set search_path = ''
as $$
begin
  if not exists (select 1 from public.organization_members m
                 where m.organization_id = p_org_id and m.user_id = (select auth.uid())) then
    raise exception 'not a member of %', p_org_id using errcode = '42501';
  end if;
  return query select * from public.conversations c where c.organization_id = p_org_id;
end
$$;

create function public.org_conversations_if_member(p_org_id uuid) returns setof public.conversations
language sql stable security definer set search_path = ''
as $$
  select c.* from public.conversations c
  where c.organization_id = p_org_id
    and exists (select 1 from public.organization_members m
                where m.organization_id = p_org_id and m.user_id = (select auth.uid()))
$$;

create function public.reopen_conversation(p_conversation_id uuid) returns void
language sql security definer set search_path = ''
as $$
  update public.conversations c set ended_at = null
  where c.id = p_conversation_id
    and c.organization_id in (select m.organization_id from public.organization_members m
                              where m.user_id = (select auth.uid()))
$$;
