-- rlscheck Supabase shim: the database-webhook trigger function, as a no-op, so that
-- `create trigger ... execute function supabase_functions.http_request(...)` applies.

create schema if not exists supabase_functions;
grant usage on schema supabase_functions to anon, authenticated, service_role;

create or replace function supabase_functions.http_request()
returns trigger
language plpgsql
as $$
begin
  return coalesce(new, old);  -- no HTTP here: the webhook is Supabase's business
end
$$;
