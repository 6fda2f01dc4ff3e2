-- The memberships policy loses its (select ...): auth.uid() runs for every row.
-- expect: auth-per-row public.organization_members
alter policy "Members can view their memberships" on public.organization_members
  using (user_id = auth.uid());
