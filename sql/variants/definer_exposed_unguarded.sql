-- Bodies that look guarded and are not: auth.uid() only in a comment and a string, and
-- current_user, which in a SECURITY DEFINER function is its owner, never the end user.
-- expect: definer-exposed public.org_member_count(p_org_id uuid)
-- severity: error definer-exposed public.org_member_count(p_org_id uuid)
-- Called with the other tenant's id it answers what the owner would: how many members they have.
-- expect: tenant-leak public.org_member_count(p_org_id uuid)
-- severity: warn tenant-leak public.org_member_count(p_org_id uuid)
create function public.org_member_count(p_org_id uuid) returns bigint
language plpgsql stable security definer set search_path = ''
as $$
begin
  -- TODO: compare p_org_id with the orgs of auth.uid()
  if current_user not in ('postgres', 'supabase_admin') then
    raise exception 'should be unreachable: auth.uid() is %', 'unknown';
  end if;
  return (select count(*) from public.organization_members m where m.organization_id = p_org_id);
end
$$;
-- The caller's id as a parameter that defaults to auth.uid(): any caller passes another one.
-- expect: definer-exposed public.is_org_admin(p_scope uuid, _viewer uuid)
-- severity: error definer-exposed public.is_org_admin(p_scope uuid, _viewer uuid)
create function public.is_org_admin(p_scope uuid, _viewer uuid default auth.uid()) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from public.organization_members m
                 where m.organization_id = p_scope and m.user_id = _viewer and m.role = 'admin')
$$;
