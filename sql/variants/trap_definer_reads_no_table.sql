-- SECURITY DEFINER functions the API can call that read and write no table and run no SQL
-- text: the owner's rights give a caller nothing, whatever the parameters are called. Table
-- names in comments and strings, format() and EXTRACT ... FROM do not count.
create function public.greeting(p_user_id uuid, p_name text) returns text
language plpgsql immutable security definer set search_path = ''
as $$
begin
  -- delete from public.messages where id = p_user_id;
  return format('update public.conversations set visitor_id = %L for %s', p_name, p_user_id);
end
$$;

create function public.conversation_age(p_org_id uuid, started timestamptz) returns double precision
language sql stable security definer set search_path = ''
as $$ select extract(epoch from now() - started) / 3600 $$;
