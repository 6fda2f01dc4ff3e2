-- Signed invitation links: a team admin mints a JWT (pgjwt) that another user redeems.
create extension if not exists pgcrypto with schema extensions;
create extension if not exists pgjwt with schema extensions;

create table public.teams (id uuid primary key, owner uuid not null);
create table public.members (team uuid references public.teams, member uuid, primary key (team, member));
alter table public.teams enable row level security;
alter table public.members enable row level security;
create policy "see own memberships" on public.members for select to authenticated
  using (member = (select auth.uid()));

create schema private;
create table private.settings (key text primary key, value text not null);
insert into private.settings values ('invite_secret', 'team-invite-signing-secret');

create function public.create_invite(team_id uuid) returns text
language plpgsql security definer set search_path = ''
as $$
begin
  if not exists (select from public.teams where id = team_id and owner = auth.uid()) then
    raise exception 'not the team owner' using errcode = '42501';
  end if;
  return extensions.sign(
    json_build_object('team', team_id, 'exp', extract(epoch from now() + interval '1 day')::bigint),
    (select value from private.settings where key = 'invite_secret'));
end
$$;

create function public.accept_invite(token text) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
  claims json;
  ok boolean;
begin
  select payload, valid into claims, ok
  from extensions.verify(token, (select value from private.settings where key = 'invite_secret'));
  if not coalesce(ok, false) then
    raise exception 'invalid invitation' using errcode = '22023';
  end if;
  insert into public.members (team, member) values ((claims ->> 'team')::uuid, auth.uid())
  on conflict do nothing;
  return (claims ->> 'team')::uuid;
end
$$;
revoke execute on function public.create_invite(uuid), public.accept_invite(text) from public, anon;
grant execute on function public.create_invite(uuid), public.accept_invite(text) to authenticated;
