-- A multi-tenant help desk: organizations (created by the backend), their agents, tickets
-- and ticket messages, and a public knowledge base. A trigger keeps each ticket's
-- last_message_at; a stats RPC for the dashboard runs as definer.
--
-- clean: public.organizations  -- members read their organization; created by the backend (no write grant)
-- clean: public.org_members  -- read within one's organizations; written by the backend only
-- clean: public.tickets  -- agents of the organization read and write its tickets
-- expect: error definer-trigger public.ticket_messages  -- the definer trigger bumps the ticket new.ticket_id names, and the INSERT policy does not check that ticket is of the same organization: alice changes bob's ticket (measured: ticket_id set to one of bob's tickets)
-- clean: public.kb_articles  -- published articles are the public help centre (anon reads them by design); agents write their organization's
-- expect: error definer-exposed public.org_ticket_stats(p_org_id uuid)  -- takes an organization id and never asks who calls: anyone reads any organization's ticket counts
-- expect: error tenant-leak public.org_ticket_stats(p_org_id uuid)  -- measured: alice (and anon) get bob's organization's answer, rows with values of their tickets (each status and its count), not a single count or flag: their data, an error
-- clean: public.open_ticket_count(p_org_id uuid)  -- SECURITY INVOKER: RLS applies, another organization's id counts nothing
-- clean: private.my_org_ids  -- helper outside the exposed schemas
-- clean: private.touch_ticket  -- trigger function outside the exposed schemas (its effect is judged on public.ticket_messages)

create schema if not exists private;
grant usage on schema private to authenticated;

create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  created_at timestamptz not null default now()
);

create table public.org_members (
  org_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  primary key (org_id, user_id)
);
create index org_members_user_id_idx on public.org_members (user_id);
revoke insert, update, delete, truncate on public.organizations, public.org_members from anon, authenticated;

create table public.tickets (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  subject text not null,
  status text not null default 'open' check (status in ('open', 'pending', 'closed')),
  requester_email text not null,
  last_message_at timestamptz,
  created_at timestamptz not null default now()
);
create index tickets_org_id_idx on public.tickets (org_id);

create table public.ticket_messages (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  ticket_id uuid not null references public.tickets (id) on delete cascade,
  author_id uuid not null default auth.uid() references auth.users (id),
  body text not null,
  created_at timestamptz not null default now()
);
create index ticket_messages_org_id_idx on public.ticket_messages (org_id);
create index ticket_messages_ticket_id_idx on public.ticket_messages (ticket_id);
create index ticket_messages_author_id_idx on public.ticket_messages (author_id);

create table public.kb_articles (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  title text not null,
  body text not null default '',
  published boolean not null default false
);
create index kb_articles_org_id_idx on public.kb_articles (org_id);

create function private.my_org_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$ select org_id from public.org_members where user_id = (select auth.uid()) $$;

create function private.touch_ticket() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.tickets set last_message_at = new.created_at, status = 'open' where id = new.ticket_id;
  return new;
end
$$;
create trigger touch_ticket after insert on public.ticket_messages
  for each row execute function private.touch_ticket();

alter table public.organizations enable row level security;
alter table public.org_members enable row level security;
alter table public.tickets enable row level security;
alter table public.ticket_messages enable row level security;
alter table public.kb_articles enable row level security;

create policy "Members read their organization" on public.organizations
  for select to authenticated using (id in (select private.my_org_ids()));
create policy "Members read their colleagues" on public.org_members
  for select to authenticated using (org_id in (select private.my_org_ids()));

create policy "Agents work the tickets" on public.tickets
  for all to authenticated
  using (org_id in (select private.my_org_ids()))
  with check (org_id in (select private.my_org_ids()));

create policy "Agents read messages" on public.ticket_messages
  for select to authenticated using (org_id in (select private.my_org_ids()));
create policy "Agents write messages" on public.ticket_messages
  for insert to authenticated
  with check (org_id in (select private.my_org_ids()) and author_id = (select auth.uid()));

create policy "Published articles are public" on public.kb_articles
  for select to anon, authenticated using (published);
create policy "Agents manage articles" on public.kb_articles
  for all to authenticated
  using (org_id in (select private.my_org_ids()))
  with check (org_id in (select private.my_org_ids()));

create function public.org_ticket_stats(p_org_id uuid) returns table (status text, tickets bigint)
language sql stable security definer set search_path = ''
as $$ select t.status, count(*) from public.tickets t where t.org_id = p_org_id group by t.status $$;

create function public.open_ticket_count(p_org_id uuid) returns bigint
language sql stable set search_path = ''
as $$ select count(*) from public.tickets t where t.org_id = p_org_id and t.status = 'open' $$;
