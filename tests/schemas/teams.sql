-- Teams: any signed-in user creates a team (the sign-up path); a trigger makes the creator
-- its owner; members work on the team's projects and tasks through helpers in a private
-- schema. The membership list was opened to "everyone" to show avatars in a team picker.
--
-- clean: public.teams  -- members read their teams, the creator alone updates it; creating a team reaches no existing row
-- expect: info policy-always-true public.teams  -- INSERT WITH CHECK (true) on the tenant root: the sign-up path
-- expect: error policy-always-true public.team_members  -- "Everyone can view" USING (true): any signed-in user reads every team's members
-- expect: error tenant-leak public.team_members  -- measured: alice reads the memberships of bob's team (and, the SELECT policy being true, moves hers into it)
-- expect: error tenant-escalation public.team_members  -- "Members can update their membership" USING (user_id = auth.uid()): PATCH team_id moves a member into another team, whose projects and documents they then read
-- expect: warn existence-oracle public.projects  -- slug is unique across all teams: a user learns which slugs other teams hold
-- expect: warn tenant-column-nullable public.comments  -- team_id takes NULL: a row no team's policy sees, one check away from everyone's
-- clean: public.documents  -- UPDATE with USING only: PostgreSQL applies it as the WITH CHECK too, so no move to another team
-- expect: error view-bypasses-rls public.team_overview  -- a view without security_invoker, owned by postgres, readable by the API
-- expect: error tenant-leak public.team_overview  -- measured: alice reads bob's team through the view
-- expect: warn auth-per-row public.tasks  -- private.is_member(team_id) is a definer SQL function of the row: runs once per task
-- expect: warn definer-exposed public.leave_team(p_team_id uuid)  -- an RPC that bypasses RLS, but deletes only the caller's own membership
-- clean: private.is_member  -- helper outside the exposed schemas, search_path fixed
-- clean: private.is_owner  -- helper outside the exposed schemas, search_path fixed
-- clean: private.my_team_ids  -- helper outside the exposed schemas, search_path fixed
-- clean: private.add_team_owner  -- trigger function: makes the caller (auth.uid()) the owner, never a column the user sets

create schema if not exists private;
grant usage on schema private to authenticated;

create table public.teams (
  id uuid primary key default gen_random_uuid(),
  name text not null check (char_length(name) between 1 and 80),
  created_by uuid not null default auth.uid() references auth.users (id) on delete cascade,
  created_at timestamptz not null default now()
);
create index teams_created_by_idx on public.teams (created_by);

create table public.team_members (
  team_id uuid not null references public.teams (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null default 'member' check (role in ('owner', 'member')),
  joined_at timestamptz not null default now(),
  primary key (team_id, user_id)
);
create index team_members_user_id_idx on public.team_members (user_id);

create table public.projects (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references public.teams (id) on delete cascade,
  name text not null,
  slug text not null unique check (slug ~ '^[a-z0-9-]+$'),
  created_at timestamptz not null default now()
);
create index projects_team_id_idx on public.projects (team_id);

create table public.tasks (
  id bigint generated always as identity primary key,
  team_id uuid not null references public.teams (id) on delete cascade,
  project_id uuid not null references public.projects (id) on delete cascade,
  title text not null,
  done boolean not null default false
);
create index tasks_team_id_idx on public.tasks (team_id);
create index tasks_project_id_idx on public.tasks (project_id);

create table public.comments (
  id bigint generated always as identity primary key,
  team_id uuid references public.teams (id) on delete cascade,
  task_id bigint not null references public.tasks (id) on delete cascade,
  author_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  body text not null
);
create index comments_team_id_idx on public.comments (team_id);
create index comments_task_id_idx on public.comments (task_id);
create index comments_author_id_idx on public.comments (author_id);

create table public.documents (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references public.teams (id) on delete cascade,
  title text not null,
  content text not null default ''
);
create index documents_team_id_idx on public.documents (team_id);

create function private.is_member(_team_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from public.team_members m
    where m.team_id = _team_id and m.user_id = (select auth.uid())
  )
$$;

create function private.is_owner(_team_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1 from public.team_members m
    where m.team_id = _team_id and m.user_id = (select auth.uid()) and m.role = 'owner'
  )
$$;

create function private.my_team_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$ select m.team_id from public.team_members m where m.user_id = (select auth.uid()) $$;

create function private.add_team_owner() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.team_members (team_id, user_id, role) values (new.id, auth.uid(), 'owner');
  return new;
end
$$;
create trigger add_team_owner after insert on public.teams
  for each row execute function private.add_team_owner();

alter table public.teams enable row level security;
alter table public.team_members enable row level security;
alter table public.projects enable row level security;
alter table public.tasks enable row level security;
alter table public.comments enable row level security;
alter table public.documents enable row level security;

create policy "Members can view their teams" on public.teams
  for select to authenticated using (id in (select private.my_team_ids()));
create policy "Signed-in users can create teams" on public.teams
  for insert to authenticated with check (true);
create policy "Creators can rename their team" on public.teams
  for update to authenticated
  using (created_by = (select auth.uid())) with check (created_by = (select auth.uid()));

create policy "Everyone can view team members" on public.team_members
  for select to authenticated using (true);
create policy "Owners can add members" on public.team_members
  for insert to authenticated with check (private.is_owner(team_id));
create policy "Members can update their membership" on public.team_members
  for update to authenticated using (user_id = (select auth.uid()));
create policy "Members can leave" on public.team_members
  for delete to authenticated using (user_id = (select auth.uid()));

create policy "Members manage projects" on public.projects
  for all to authenticated
  using (team_id in (select private.my_team_ids()))
  with check (team_id in (select private.my_team_ids()));

create policy "Members manage tasks" on public.tasks
  for all to authenticated
  using (private.is_member(team_id))
  with check (private.is_member(team_id));

create policy "Members read and write comments" on public.comments
  for all to authenticated
  using (team_id in (select private.my_team_ids()))
  with check (team_id in (select private.my_team_ids()) and author_id = (select auth.uid()));

create policy "Members read documents" on public.documents
  for select to authenticated using (team_id in (select private.my_team_ids()));
create policy "Members create documents" on public.documents
  for insert to authenticated with check (team_id in (select private.my_team_ids()));
create policy "Members edit documents" on public.documents
  for update to authenticated using (team_id in (select private.my_team_ids()));

create view public.team_overview as
  select t.id, t.name, count(p.id) as projects
  from public.teams t left join public.projects p on p.team_id = t.id
  group by t.id;

create function public.leave_team(p_team_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  delete from public.team_members
  where team_id = p_team_id and user_id = (select auth.uid()) and role <> 'owner';
end
$$;
