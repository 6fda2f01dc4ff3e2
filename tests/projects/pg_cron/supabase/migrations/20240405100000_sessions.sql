create table public.sessions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  expires_at timestamptz not null default now() + interval '7 days'
);

create index sessions_user_id_idx on public.sessions (user_id);

alter table public.sessions enable row level security;

create policy "users see their sessions" on public.sessions
  for select to authenticated using (user_id = (select auth.uid()));
