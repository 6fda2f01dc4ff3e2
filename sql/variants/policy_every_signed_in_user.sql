-- The old Supabase idiom `auth.role() = 'authenticated'` (or `auth.uid() is not null`) names no
-- row: every signed-in user passes, for every row of every tenant. (Unwrapped, it also runs
-- per row. The open UPDATE policy is no leak yet: a filtered UPDATE also needs the SELECT policy.)
-- expect: auth-per-row public.conversations
-- expect: policy-always-true public.conversations
-- expect: policy-always-true public.messages
-- severity: warn policy-always-true public.conversations
-- severity: error policy-always-true public.messages
-- expect: tenant-leak public.conversations
-- expect: tenant-leak public.conversations_with_stats
alter policy conversations_select on public.conversations using (auth.role() = 'authenticated');
alter policy messages_update on public.messages
  using ((select auth.uid()) is not null) with check ((select auth.uid()) is not null);
