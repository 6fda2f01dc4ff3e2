-- A Stripe-style integration: the API key lives in Vault, a SECURITY DEFINER function
-- hands it only to admins, and users see their own charges.
create extension if not exists supabase_vault with schema vault;

create table public.profiles (
  id uuid primary key,
  is_admin boolean not null default false
);
alter table public.profiles enable row level security;
create policy "own profile" on public.profiles for select to authenticated
  using (id = (select auth.uid()));

select vault.create_secret('sk_test_rlscheck_123', 'stripe_api_key', 'Stripe secret key');

create function public.stripe_api_key() returns text
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not exists (select from public.profiles where id = auth.uid() and is_admin) then
    raise exception 'admins only' using errcode = '42501';
  end if;
  return (select decrypted_secret from vault.decrypted_secrets where name = 'stripe_api_key');
end
$$;
revoke execute on function public.stripe_api_key() from public, anon;
grant execute on function public.stripe_api_key() to authenticated;
