-- Text matching flags the unwrapped auth.uid(); the plan runs it once (an uncorrelated,
-- hashed SubPlan whose function is called once). Not a finding.
alter policy conversations_select on public.conversations
  using (organization_id in (select private.get_user_organization_ids(auth.uid())));
