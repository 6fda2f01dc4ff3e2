-- The issue's "leak passes as verified": the UPDATE policy's WITH CHECK pins the domain only,
-- and a second SELECT policy lets members read their domains' conversations. Moving a
-- conversation's organization_id alone to another tenant (its own domain kept) gets through,
-- and that tenant then reads it. (Copying every key of the other tenant's row at once is
-- refused: the domain is theirs.) The composite foreign keys that would also stop it are gone.
-- expect: tenant-leak public.conversations
-- severity: error tenant-leak public.conversations
-- expect: multiple-permissive public.conversations
alter table public.messages drop constraint messages_conversation_same_organization_fkey;
alter table public.conversations drop constraint conversations_domain_same_organization_fkey;
alter policy conversations_update on public.conversations
  with check (domain_id in (select private.get_user_domain_ids((select auth.uid()))));
create policy conversations_select_by_domain on public.conversations for select to authenticated
  using (domain_id in (select private.get_user_domain_ids((select auth.uid()))));
