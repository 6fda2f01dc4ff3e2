-- A wrapped call, ( SELECT (auth.jwt() ->> 'role') ): an InitPlan, run once. Not a finding.
alter policy conversations_select on public.conversations
  using ((select (auth.jwt() ->> 'role')) = 'authenticated'
         and organization_id in (select private.get_user_organization_ids((select auth.uid()))));
