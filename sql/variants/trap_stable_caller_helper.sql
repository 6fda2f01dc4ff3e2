-- The helper of immutable_reads_session.sql, declared STABLE: evaluated when each statement
-- runs, so a prepared statement gives every user their own value. Not a finding.
create function private.current_user_id() returns uuid
language sql stable
as $$ select auth.uid() $$;
grant execute on function private.current_user_id() to authenticated;
alter policy "Members can view their memberships" on public.organization_members
  using (user_id = (select private.current_user_id()));
