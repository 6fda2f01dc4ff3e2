-- A VOLATILE plpgsql membership check called with the row's organization_id: PostgreSQL calls
-- it for every conversation it reads (counted with track_functions), the most common RLS
-- slowdown. The SELECT policy applies to the UPDATE too.
-- expect: auth-per-row public.conversations
-- severity: warn auth-per-row public.conversations
create function private.is_member(org uuid) returns boolean
language plpgsql volatile
set search_path = ''
as $$
begin
  return exists (
    select 1 from public.organization_members m
    where m.organization_id = org and m.user_id = auth.uid()
  );
end;
$$;
alter policy conversations_select on public.conversations
  using (private.is_member(organization_id));
