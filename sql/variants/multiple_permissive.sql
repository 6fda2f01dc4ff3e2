-- A second permissive SELECT policy for the same role.
-- expect: multiple-permissive public.conversations
create policy conversations_select_by_domain on public.conversations for select to authenticated
  using (domain_id in (select private.get_user_domain_ids((select auth.uid()))));
