-- RPCs that take an id and bypass RLS (SECURITY DEFINER), called with the other tenant's ids:
-- one hands over their conversations, one closes any conversation, one deletes any message.
-- The id of a tenant's row (p_conversation_id) is not a user or tenant id, but the bodies
-- update and delete the rows of RLS-protected tables by it and never ask who is calling:
-- definer-exposed is an error from the catalog (it used to warn, judged by the parameters'
-- names alone), and the calls show what they do.
-- expect: definer-exposed public.get_conversations(org uuid)
-- expect: tenant-leak public.get_conversations(org uuid)
-- severity: error tenant-leak public.get_conversations(org uuid)
-- expect: definer-exposed public.close_conversation(p_conversation_id uuid)
-- severity: error definer-exposed public.close_conversation(p_conversation_id uuid)
-- expect: tenant-leak public.close_conversation(p_conversation_id uuid)
-- severity: error tenant-leak public.close_conversation(p_conversation_id uuid)
-- expect: definer-exposed public.delete_message(p_message_id uuid)
-- severity: error definer-exposed public.delete_message(p_message_id uuid)
-- expect: tenant-leak public.delete_message(p_message_id uuid)
create function public.get_conversations(org uuid) returns setof public.conversations
language sql stable security definer set search_path = ''
as $$ select * from public.conversations where organization_id = org $$;

create function public.close_conversation(p_conversation_id uuid) returns void
language sql security definer set search_path = ''
as $$ update public.conversations set ended_at = now() where id = p_conversation_id $$;

create function public.delete_message(p_message_id uuid) returns boolean
language plpgsql security definer set search_path = ''
as $$
begin
  delete from public.messages where id = p_message_id;
  return found;
end
$$;
