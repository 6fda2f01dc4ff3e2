-- The same per-user notes with the claim wrapped, ( SELECT ... ): an InitPlan, run once in the
-- index scan and in a sequential scan alike. Not a finding.
create table public.notes (
  id bigint primary key,
  user_id uuid not null,
  body text not null
);
create index notes_user_id_idx on public.notes (user_id);
alter table public.notes enable row level security;
create policy notes_own on public.notes for all to authenticated
  using (user_id = (select (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')::uuid))
  with check (user_id = (select (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')::uuid));
revoke all on public.notes from anon;
insert into public.notes (id, user_id, body)
select i,
       case i % 500 when 0 then '11111111-1111-1111-1111-111111111111'::uuid
                    when 250 then '22222222-2222-2222-2222-222222222222'::uuid
                    else md5('note-' || i)::uuid end,
       'note ' || i
from generate_series(1, 4000) i;
analyze public.notes;
