-- rlscheck Supabase shim: the (initially empty) publication Supabase Realtime listens on,
-- so that `alter publication supabase_realtime add table ...` applies.

do $shim$
begin
  if not exists (select from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$shim$;
