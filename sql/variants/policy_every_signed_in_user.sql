-- The old Supabase idiom `auth.role() = 'authenticated'` (or `auth.uid() is not null`) names no
-- row: every signed-in user passes, for every row of every tenant. (Unwrapped, it also runs
-- per row. The open UPDATE policy is a latent leak: a filtered UPDATE also needs the SELECT
-- policy, but `update messages set … ` without a WHERE gets the UPDATE policy alone — which
-- safeupdate refuses through the API today, hence a warning.)
-- expect: auth-per-row public.conversations
-- expect: policy-always-true public.conversations
-- expect: policy-always-true public.messages
-- severity: error policy-always-true public.conversations
-- severity: warn policy-always-true public.messages
-- expect: tenant-leak public.conversations
-- expect: tenant-leak public.conversations_with_stats
-- expect: tenant-leak public.messages
-- severity: warn tenant-leak public.messages
alter policy conversations_select on public.conversations using (auth.role() = 'authenticated');
alter policy messages_update on public.messages
  using ((select auth.uid()) is not null) with check ((select auth.uid()) is not null);
