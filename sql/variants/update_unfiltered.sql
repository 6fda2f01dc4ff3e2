-- The UPDATE policy is wider than the SELECT policy: a PATCH without a filter
-- (`update conversations set organization_id = <mine>`, no WHERE, so no SELECT policy applies)
-- takes every tenant's conversations over; with a filter the SELECT policy hides them.
-- Supabase's safeupdate refuses UPDATE without WHERE through the API: latent, a warning.
-- expect: tenant-leak public.conversations
-- severity: warn tenant-leak public.conversations
alter policy conversations_update on public.conversations
  using (organization_id is not null)
  with check (organization_id in (select private.get_user_organization_ids((select auth.uid()))));
