-- Chat product schema, first version.
--
-- Tenants are organizations; users reach them through organization_members; each
-- organization owns website domains, conversations start on a domain, messages belong to
-- a conversation. This is the state before the optimisation migration: SELECT-only
-- policies that call auth.uid() once per row, single-column indexes, and a nullable
-- organization_id on conversations and messages.

create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  created_at timestamptz not null default now()
);

create table public.organization_members (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null default 'member' check (role in ('owner', 'admin', 'member')),
  created_at timestamptz not null default now(),
  primary key (organization_id, user_id)
);

create table public.domains (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  hostname text not null unique,
  created_at timestamptz not null default now()
);
create index domains_organization_id_idx on public.domains (organization_id);

create table public.conversations (
  id uuid primary key default gen_random_uuid(),
  domain_id uuid not null references public.domains (id) on delete cascade,
  organization_id uuid references public.organizations (id) on delete cascade,
  visitor_id text,
  started_at timestamptz not null default now(),
  ended_at timestamptz,
  metadata jsonb not null default '{}'::jsonb
);
create index conversations_domain_id_idx on public.conversations (domain_id);
create index conversations_started_at_idx on public.conversations (started_at);

create table public.messages (
  id uuid primary key default gen_random_uuid(),
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  organization_id uuid references public.organizations (id) on delete cascade,
  role text not null check (role in ('user', 'assistant', 'system')),
  content text not null,
  created_at timestamptz not null default now(),
  metadata jsonb not null default '{}'::jsonb
);
create index messages_conversation_id_idx on public.messages (conversation_id);
create index messages_created_at_idx on public.messages (created_at);

-- Organizations, memberships and domains are managed by the backend (service_role).
revoke insert, update, delete, truncate on public.organizations, public.organization_members, public.domains
  from anon, authenticated;

alter table public.organizations enable row level security;
alter table public.organization_members enable row level security;
alter table public.domains enable row level security;
alter table public.conversations enable row level security;
alter table public.messages enable row level security;

create policy "Members can view their organizations" on public.organizations
  for select to authenticated
  using (exists (
    select 1 from public.organization_members m
    where m.organization_id = organizations.id and m.user_id = auth.uid()
  ));

create policy "Members can view their memberships" on public.organization_members
  for select to authenticated
  using (user_id = auth.uid());

create policy "Members can view their domains" on public.domains
  for select to authenticated
  using (exists (
    select 1 from public.organization_members m
    where m.organization_id = domains.organization_id and m.user_id = auth.uid()
  ));

-- organization_id may still be null on old rows: fall back to the organization of the
-- conversation's domain (or of the message's conversation).
create policy "Members can view conversations" on public.conversations
  for select to authenticated
  using (exists (
    select 1
    from public.organization_members m
    where m.user_id = auth.uid()
      and (m.organization_id = conversations.organization_id
           or m.organization_id = (select d.organization_id from public.domains d
                                   where d.id = conversations.domain_id))
  ));

create policy "Members can view messages" on public.messages
  for select to authenticated
  using (exists (
    select 1
    from public.organization_members m
    where m.user_id = auth.uid()
      and (m.organization_id = messages.organization_id
           or m.organization_id = (select c.organization_id from public.conversations c
                                   where c.id = messages.conversation_id))
  ));
