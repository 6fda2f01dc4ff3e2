-- RPCs that take a tenant id but check the caller against it: still API endpoints that bypass
-- RLS (warn), not the error of an unguarded one. OUT/TABLE columns are not parameters, and a
-- boolean named like an owner is not an id.
-- expect: definer-exposed public.org_conversation_count(p_org_id uuid)
-- severity: warn definer-exposed public.org_conversation_count(p_org_id uuid)
create function public.org_conversation_count(p_org_id uuid) returns bigint
language plpgsql stable security definer set search_path = ''
as $$
begin
  if not exists (
    select 1 from public.organization_members m
    where m.organization_id = p_org_id and m.user_id = (select auth.uid())
  ) then
    raise exception 'not a member of %', p_org_id using errcode = '42501';
  end if;
  return (select count(*) from public.conversations c where c.organization_id = p_org_id);
end
$$;
-- expect: definer-exposed public.conversation_totals(as_owner boolean)
-- severity: warn definer-exposed public.conversation_totals(as_owner boolean)
create function public.conversation_totals(as_owner boolean default false)
returns table (user_id uuid, conversations bigint)
language sql stable security definer set search_path = ''
as $$ select null::uuid, count(*) from public.conversations where not as_owner $$;
-- The check can sit in a helper it calls.
-- expect: definer-exposed public.org_message_count(p_org_id uuid)
-- severity: warn definer-exposed public.org_message_count(p_org_id uuid)
create function private.require_member(p_org uuid) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if not exists (
    select 1 from public.organization_members m where m.organization_id = p_org and m.user_id = (select auth.uid())
  ) then
    raise exception 'not a member' using errcode = '42501';
  end if;
end
$$;
revoke all on function private.require_member(uuid) from public;
create function public.org_message_count(p_org_id uuid) returns bigint
language plpgsql stable security definer set search_path = ''
as $$
begin
  perform private.require_member(p_org_id);
  return (select count(*) from public.messages x where x.organization_id = p_org_id);
end
$$;
-- A SQL-standard body (BEGIN ATOMIC) is read too.
-- expect: definer-exposed public.my_org_conversation_count(p_org_id uuid)
-- severity: warn definer-exposed public.my_org_conversation_count(p_org_id uuid)
create function public.my_org_conversation_count(p_org_id uuid) returns bigint
language sql stable security definer set search_path = ''
begin atomic
  select count(*) from public.conversations c
  where c.organization_id = p_org_id
    and exists (select 1 from public.organization_members m
                where m.organization_id = p_org_id and m.user_id = (select auth.uid()));
end;
