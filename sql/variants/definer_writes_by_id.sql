-- RPCs that write a tenant's rows by an id the caller passes and never ask who is calling:
-- the row's id is not a user or tenant id, so only what the body writes tells. Any caller can
-- change any conversation and delete any message (definer-exposed, from the catalog), and
-- the calls as one user with the other tenant's ids show it (tenant-leak, measured).
-- expect: definer-exposed public.set_conversation_visitor(p_id uuid, p_visitor text)
-- severity: error definer-exposed public.set_conversation_visitor(p_id uuid, p_visitor text)
-- expect: tenant-leak public.set_conversation_visitor(p_id uuid, p_visitor text)
-- severity: error tenant-leak public.set_conversation_visitor(p_id uuid, p_visitor text)
-- expect: definer-exposed public.forget_message(target uuid)
-- severity: error definer-exposed public.forget_message(target uuid)
-- expect: tenant-leak public.forget_message(target uuid)
-- severity: error tenant-leak public.forget_message(target uuid)
create function public.set_conversation_visitor(p_id uuid, p_visitor text) returns void
language sql security definer set search_path = ''
as $$ update public.conversations c set visitor_id = p_visitor where c.id = p_id $$;

create function public.forget_message(target uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid := target;
begin
  delete from public.messages where id = v_id;
end
$$;
