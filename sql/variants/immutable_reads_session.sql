-- A helper for the caller's id, declared IMMUTABLE ("it has no arguments, it always returns
-- the same"). PostgreSQL folds its value into the plan of every statement that reads
-- organization_members; a prepared statement planned for alice shows bob alice's membership.
-- expect: immutable-reads-session private.current_user_id()
-- severity: error immutable-reads-session private.current_user_id()
create function private.current_user_id() returns uuid
language sql immutable
as $$ select auth.uid() $$;
grant execute on function private.current_user_id() to authenticated;
alter policy "Members can view their memberships" on public.organization_members
  using (user_id = (select private.current_user_id()));
