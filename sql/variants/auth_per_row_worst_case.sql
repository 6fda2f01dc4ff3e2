-- Per-user notes whose policy reads the sub claim straight from the request settings, with
-- user_id indexed. For the seed's few notes per user the planner reads the index: the call sits
-- in the Index Cond and runs once. At another size, or with another filter, it picks a
-- sequential scan and the call runs once per row: measured with the scan forced.
-- expect: auth-per-row public.notes
-- severity: warn auth-per-row public.notes
create table public.notes (
  id bigint primary key,
  user_id uuid not null,
  body text not null
);
create index notes_user_id_idx on public.notes (user_id);
alter table public.notes enable row level security;
create policy notes_own on public.notes for all to authenticated
  using (user_id = (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')::uuid)
  with check (user_id = (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')::uuid);
revoke all on public.notes from anon;
-- 4,000 notes, 8 of them alice's and 8 bob's; the others belong to users of other tenants
insert into public.notes (id, user_id, body)
select i,
       case i % 500 when 0 then '11111111-1111-1111-1111-111111111111'::uuid
                    when 250 then '22222222-2222-2222-2222-222222222222'::uuid
                    else md5('note-' || i)::uuid end,
       'note ' || i
from generate_series(1, 4000) i;
analyze public.notes;
