-- A view created without security_invoker: it reads conversations as its owner.
-- expect: view-bypasses-rls public.conversation_list
-- expect: tenant-leak public.conversation_list
create view public.conversation_list as
  select id, organization_id, started_at, status from public.conversations;
