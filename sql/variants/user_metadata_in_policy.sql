-- Admins recognised by user_metadata, which every user can edit for themselves.
-- expect: user-metadata-in-policy public.domains
-- expect: multiple-permissive public.domains
create policy domains_admin_read on public.domains for select to authenticated
  using (((select auth.jwt()) -> 'user_metadata' ->> 'role') = 'admin');
