-- A tenant key the name list does not know (gym_id): the policies filter on it, so an RPC
-- taking _gym_id lets any caller pick any gym's data. (The tenant key is the column the
-- policies test against the caller's set of tenants, so isolation is checked, and holds;
-- the RPC's probe, as another tenant, measures the leak.)
-- expect: definer-exposed public.gym_visit_count(_gym_id uuid)
-- expect: tenant-leak public.gym_visit_count(_gym_id uuid)
-- severity: warn tenant-leak public.gym_visit_count(_gym_id uuid)
-- severity: error definer-exposed public.gym_visit_count(_gym_id uuid)
create table public.gym_visits (
  id bigint generated always as identity primary key,
  gym_id uuid not null,
  visited_at timestamptz not null default now()
);
create index gym_visits_gym_id_idx on public.gym_visits (gym_id);
alter table public.gym_visits enable row level security;
create policy gym_visits_select on public.gym_visits for select to authenticated
  using (gym_id in (select private.get_user_organization_ids((select auth.uid()))));
revoke all on public.gym_visits from anon;
revoke insert, update, delete, truncate, references, trigger on public.gym_visits from authenticated;
create function public.gym_visit_count(_gym_id uuid) returns bigint
language sql stable security definer set search_path = ''
as $$ select count(*) from public.gym_visits where gym_id = _gym_id $$;
