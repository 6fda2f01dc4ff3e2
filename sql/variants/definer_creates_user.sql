-- An RPC that writes into auth.users with the values the caller passes: anon can create a
-- user (and pick their id and email), bypassing sign-up and its checks.
-- expect: definer-exposed public.invite_user(p_email text)
-- severity: error definer-exposed public.invite_user(p_email text)
create function public.invite_user(p_email text) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  v_id uuid := gen_random_uuid();
begin
  insert into auth.users (id, email, aud, role) values (v_id, p_email, 'authenticated', 'authenticated');
  return v_id;
end
$$;
