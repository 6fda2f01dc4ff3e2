-- A new foreign key without an index.
-- expect: unindexed-fk public.conversations
alter table public.conversations add column assigned_to uuid references auth.users (id);
