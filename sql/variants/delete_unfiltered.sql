-- The DELETE policy is wider than the SELECT policy: `delete from messages` without a WHERE
-- (no SELECT policy applies) deletes every tenant's messages; with a filter the SELECT policy
-- hides them. Supabase's safeupdate refuses DELETE without WHERE through the API: latent.
-- expect: tenant-leak public.messages
-- severity: warn tenant-leak public.messages
alter policy messages_delete on public.messages using (organization_id is not null);
