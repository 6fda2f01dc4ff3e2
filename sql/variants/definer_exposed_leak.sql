-- An RPC without parameters that returns every tenant's conversations.
-- expect: definer-exposed public.all_conversations()
-- expect: tenant-leak public.all_conversations()
create function public.all_conversations() returns setof public.conversations
language sql stable security definer set search_path = ''
as $$ select * from public.conversations $$;
