-- A join request names the organization to join, and a SECURITY DEFINER trigger approves it
-- on the spot: it creates the membership with its owner's rights, for whatever organization
-- the row names. The table's own policies are right (a user reads and writes only their own
-- requests); the trigger lets any user join any organization.
-- expect: definer-trigger public.join_requests
-- severity: error definer-trigger public.join_requests
create table public.join_requests (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  role text not null default 'member' check (role in ('admin', 'member')),
  created_at timestamptz not null default now()
);
create index join_requests_user_id_idx on public.join_requests (user_id);
create index join_requests_organization_id_idx on public.join_requests (organization_id);
alter table public.join_requests enable row level security;
revoke all on public.join_requests from anon;
revoke update, delete, truncate, references, trigger on public.join_requests from authenticated;
create policy join_requests_select on public.join_requests for select to authenticated
  using (user_id = (select auth.uid()));
create policy join_requests_insert on public.join_requests for insert to authenticated
  with check (user_id = (select auth.uid()));

create function private.approve_join_request() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.organization_members (organization_id, user_id, role)
  values (new.organization_id, new.user_id, new.role)
  on conflict (organization_id, user_id) do nothing;
  return new;
end
$$;
create trigger join_requests_approve after insert on public.join_requests
  for each row execute function private.approve_join_request();

-- each user once asked to join their own organization
insert into public.join_requests (user_id, organization_id)
select m.user_id, m.organization_id from public.organization_members m;
