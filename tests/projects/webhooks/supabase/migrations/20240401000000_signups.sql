-- A database webhook, as the dashboard writes one: each new signup is posted to an edge function.
create table public.signups (
  id bigint generated always as identity primary key,
  user_id uuid not null default auth.uid(),
  plan text not null default 'free'
);
create index signups_user_id_idx on public.signups (user_id);
alter table public.signups enable row level security;
create policy "users sign themselves up" on public.signups for insert to authenticated
  with check ((select auth.uid()) = user_id);
create policy "users see their signup" on public.signups for select to authenticated
  using ((select auth.uid()) = user_id);

create trigger "signup-webhook" after insert on public.signups
  for each row execute function supabase_functions.http_request(
    'https://abcdefghijklmnopqrst.supabase.co/functions/v1/welcome',
    'POST',
    '{"Content-Type":"application/json"}',
    '{}',
    '5000'
  );
