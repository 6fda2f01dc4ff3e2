-- "Everyone may read conversations": static rules see it, and the sweep proves the leak.
-- expect: policy-always-true public.conversations
-- expect: multiple-permissive public.conversations
-- expect: tenant-leak public.conversations
-- expect: tenant-leak public.conversations_with_stats
create policy conversations_read_all on public.conversations for select to authenticated using (true);
