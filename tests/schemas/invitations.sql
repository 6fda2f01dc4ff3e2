-- Workspaces joined by invitation: an admin invites an email, the invitee accepts with the
-- token from the e-mail through an RPC that checks the signed-in user's e-mail. Drafts are
-- private to their author inside a workspace. The "invite" RPC forgot to check that the
-- caller administers the workspace.
--
-- clean: public.workspaces  -- members read, the owner (checked = auth.uid()) creates and renames
-- expect: error tenant-escalation public.workspace_members  -- "Members update their own membership" (to mute it) checks only user_id: a member sets role = 'owner' and manages the workspace's invitations (measured from a member who starts lower than the synthesized owner)
-- expect: warn tenant-leak public.workspace_members  -- a move into another workspace works only without a WHERE (with one, the SELECT policy refuses the new row): latent, safeupdate refuses it through the API
-- clean: public.invitations  -- admins of the workspace manage them; an invitee reads those sent to their verified e-mail
-- clean: public.drafts  -- workspace_id and user_id, policies compare user_id = auth.uid(): private to the author
-- expect: warn definer-exposed public.accept_invitation(p_token text)  -- RPC bypassing RLS; joins the caller (auth.uid()) only with a token sent to the caller's e-mail
-- expect: error definer-exposed public.invite_member(p_workspace_id uuid, p_email text)  -- takes a workspace id, never checks the caller: anyone invites anyone (themselves) into any workspace
-- expect: error tenant-leak public.invite_member(p_workspace_id uuid, p_email text)  -- measured: alice creates an invitation in bob's workspace
-- expect: error immutable-reads-session public.my_email()  -- IMMUTABLE but reads the JWT: a cached plan hands one user's e-mail to the next
-- clean: private.my_workspace_ids  -- helper outside the exposed schemas
-- clean: private.my_admin_workspace_ids  -- helper outside the exposed schemas
-- clean: private.add_workspace_owner  -- trigger function: the owner column is checked = auth.uid() by the INSERT policy

create schema if not exists private;
grant usage on schema private to authenticated;

create table public.workspaces (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  owner_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  created_at timestamptz not null default now()
);
create index workspaces_owner_id_idx on public.workspaces (owner_id);

create table public.workspace_members (
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null default 'member' check (role in ('owner', 'admin', 'member')),
  muted boolean not null default false,
  primary key (workspace_id, user_id)
);
create index workspace_members_user_id_idx on public.workspace_members (user_id);

create table public.invitations (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  email text not null,
  role text not null default 'member' check (role in ('admin', 'member')),
  token text not null unique default replace(gen_random_uuid()::text, '-', ''),
  invited_by uuid default auth.uid() references auth.users (id) on delete set null,
  accepted_at timestamptz,
  created_at timestamptz not null default now(),
  unique (workspace_id, email)
);
create index invitations_invited_by_idx on public.invitations (invited_by);

create table public.drafts (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  body text not null default '',
  updated_at timestamptz not null default now()
);
create index drafts_workspace_id_idx on public.drafts (workspace_id);
create index drafts_user_id_idx on public.drafts (user_id);

create function private.my_workspace_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$ select workspace_id from public.workspace_members where user_id = (select auth.uid()) $$;

create function private.my_admin_workspace_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
  select workspace_id from public.workspace_members
  where user_id = (select auth.uid()) and role in ('owner', 'admin')
$$;

create function private.add_workspace_owner() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into public.workspace_members (workspace_id, user_id, role) values (new.id, new.owner_id, 'owner');
  return new;
end
$$;
create trigger add_workspace_owner after insert on public.workspaces
  for each row execute function private.add_workspace_owner();

alter table public.workspaces enable row level security;
alter table public.workspace_members enable row level security;
alter table public.invitations enable row level security;
alter table public.drafts enable row level security;

create policy "Members view their workspaces" on public.workspaces
  for select to authenticated using (id in (select private.my_workspace_ids()));
create policy "Users create workspaces they own" on public.workspaces
  for insert to authenticated with check (owner_id = (select auth.uid()));
create policy "Owners rename their workspace" on public.workspaces
  for update to authenticated
  using (owner_id = (select auth.uid())) with check (owner_id = (select auth.uid()));

create policy "Members view fellow members" on public.workspace_members
  for select to authenticated using (workspace_id in (select private.my_workspace_ids()));
create policy "Admins add members" on public.workspace_members
  for insert to authenticated with check (workspace_id in (select private.my_admin_workspace_ids()));
create policy "Members update their own membership" on public.workspace_members
  for update to authenticated using (user_id = (select auth.uid()));
create policy "Leave or be removed by an admin" on public.workspace_members
  for delete to authenticated
  using (user_id = (select auth.uid()) or workspace_id in (select private.my_admin_workspace_ids()));

create policy "Admins manage invitations" on public.invitations
  for all to authenticated
  using (workspace_id in (select private.my_admin_workspace_ids()))
  with check (workspace_id in (select private.my_admin_workspace_ids()));
create policy "Invitees see their invitations" on public.invitations
  for select to authenticated using (email = (select auth.jwt() ->> 'email'));

create policy "Authors manage their drafts" on public.drafts
  for all to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));

create function public.accept_invitation(p_token text) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  inv public.invitations;
begin
  select * into inv from public.invitations
  where token = p_token and accepted_at is null
    and lower(email) = lower((select auth.jwt() ->> 'email'));
  if not found then
    raise exception 'invitation not found' using errcode = 'P0002';
  end if;
  insert into public.workspace_members (workspace_id, user_id, role)
  values (inv.workspace_id, (select auth.uid()), inv.role)
  on conflict (workspace_id, user_id) do nothing;
  update public.invitations set accepted_at = now() where id = inv.id;
  return inv.workspace_id;
end
$$;

create function public.invite_member(p_workspace_id uuid, p_email text) returns uuid
language sql security definer set search_path = ''
as $$
  insert into public.invitations (workspace_id, email)
  values (p_workspace_id, lower(p_email))
  on conflict (workspace_id, email) do update set created_at = now()
  returning id
$$;

create function public.my_email() returns text
language sql immutable
as $$ select auth.jwt() ->> 'email' $$;
