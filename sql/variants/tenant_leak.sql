-- No literal `true`, no rule of thumb broken — and every tenant can read every conversation. The view over it leaks too.
-- expect: tenant-leak public.conversations
-- expect: tenant-leak public.conversations_with_stats
alter policy conversations_select on public.conversations
  using (organization_id is not null);
