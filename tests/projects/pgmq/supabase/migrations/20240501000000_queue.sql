-- Supabase Queues, as the docs enable them, and a table the app queues emails for.
create extension if not exists pgmq;

select pgmq.create('emails');

create table public.email_requests (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  msg_id bigint,
  created_at timestamptz not null default now()
);

create index email_requests_user_id_idx on public.email_requests (user_id);

alter table public.email_requests enable row level security;

create policy "users see their email requests" on public.email_requests
  for select to authenticated using (user_id = (select auth.uid()));
