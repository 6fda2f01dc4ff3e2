-- An RPC that takes the tenant as a parameter and bypasses RLS: anyone can ask for any tenant.
-- expect: definer-exposed public.org_conversations(p_org_id uuid)
-- Called with the other tenant's id, it returns their conversations.
-- expect: tenant-leak public.org_conversations(p_org_id uuid)
create function public.org_conversations(p_org_id uuid) returns setof public.conversations
language sql stable security definer set search_path = ''
as $$ select * from public.conversations where organization_id = p_org_id $$;
