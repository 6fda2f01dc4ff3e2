-- Policies for the chat widget's visitors, who use the anon key: `auth.uid() is null` admits
-- any anon request. Anon can post messages into any tenant's conversations (an INSERT
-- policy), and an UPDATE policy for PUBLIC lets it rewrite every tenant's messages — though
-- only without a WHERE (it reads none of them), which safeupdate refuses through the API.
-- expect: tenant-leak public.messages
-- severity: error tenant-leak public.messages
-- expect: multiple-permissive public.messages
-- expect: insert-without-select public.messages
create policy messages_visitor_posts on public.messages for insert to anon
  with check ((select auth.uid()) is null);
create policy messages_visitor_edits on public.messages for update
  using ((select auth.uid()) is null) with check ((select auth.uid()) is null);
