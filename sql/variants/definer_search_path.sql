-- A SECURITY DEFINER helper (not exposed: private schema) without a fixed search_path.
-- expect: definer-search-path private.tenant_ids()
create function private.tenant_ids() returns setof uuid
language sql stable security definer
as $$ select organization_id from public.organization_members where user_id = auth.uid() $$;
revoke all on function private.tenant_ids() from public;
grant execute on function private.tenant_ids() to authenticated;
