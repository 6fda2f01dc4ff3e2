-- "Visitors may read": a SELECT policy for anon whose condition admits any caller without a
-- user id. Signed-in users stay in their tenant; the anon key reads every tenant's
-- conversations, and the dashboard view over them.
-- expect: tenant-leak public.conversations
-- expect: tenant-leak public.conversations_with_stats
create policy conversations_visitors on public.conversations for select to anon
  using ((select auth.uid()) is null or organization_id in (
    select m.organization_id from public.organization_members m where m.user_id = (select auth.uid())));
