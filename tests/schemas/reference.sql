-- Public reference tables of a SaaS: countries, currencies, time zones, subscription plans
-- and their features, read by the landing page with the anon key. One table was created
-- without RLS, one was "managed" by every signed-in user; a pricing helper runs as definer.
--
-- clean: public.countries  -- a catalogue everyone may read, no write policy
-- expect: info policy-always-true public.countries  -- USING (true) on a catalogue (nobody's rows): public by design
-- expect: error rls-disabled public.currencies  -- RLS off, Supabase's default grants: anon can insert, update and delete currencies
-- expect: warn rls-disabled public.timezones  -- RLS off, only SELECT granted: a catalogue read is the design, but one GRANT away from anyone writing it
-- expect: info policy-always-true public.plans  -- "viewable by everyone": a catalogue read is the design
-- expect: error policy-always-true public.plans  -- "Authenticated users can manage plans" FOR ALL USING (true): any signed-in user changes or deletes every price
-- clean: public.plan_features  -- readable by everyone, only admins (a flag in app_metadata, set by the backend) write
-- expect: info policy-always-true public.plan_features  -- "Features are viewable by everyone": a catalogue read
-- clean: public.changelog  -- release notes any signed-in user reads: a catalogue (nobody's rows)
-- expect: info policy-always-true public.changelog  -- (select auth.uid()) IS NOT NULL is true for every signed-in user: a catalogue read, the design
-- clean: public.waitlist  -- the landing page's sign-up form: anon adds an e-mail, nobody reads or changes one through the API
-- expect: info policy-always-true public.waitlist  -- INSERT WITH CHECK (true) on a table of nobody's rows: a sign-up path that reaches no existing row
-- clean: public.plan_catalog  -- security_invoker view over catalogues everyone reads
-- clean: public.price_with_vat(cents integer, rate numeric)  -- SECURITY DEFINER, but reads and writes no table: the owner's rights give nothing

create table public.countries (
  code char(2) primary key,
  name text not null,
  dial_code text
);
alter table public.countries enable row level security;
create policy "Countries are viewable by everyone" on public.countries
  for select to anon, authenticated using (true);

create table public.currencies (
  code char(3) primary key,
  symbol text not null,
  decimals smallint not null default 2
);

create table public.timezones (
  name text primary key,
  utc_offset interval not null
);
revoke all on public.timezones from anon, authenticated;
grant select on public.timezones to anon, authenticated;

create table public.plans (
  id text primary key,
  name text not null,
  price_cents integer not null check (price_cents >= 0),
  currency char(3) not null default 'USD',
  active boolean not null default true
);
alter table public.plans enable row level security;
create policy "Plans are viewable by everyone" on public.plans
  for select using (true);
create policy "Authenticated users can manage plans" on public.plans
  for all to authenticated using (true) with check (true);

create table public.plan_features (
  id bigint generated always as identity primary key,
  plan_id text not null references public.plans (id) on delete cascade,
  feature text not null,
  quota integer,
  unique (plan_id, feature)
);
alter table public.plan_features enable row level security;
create policy "Features are viewable by everyone" on public.plan_features
  for select to anon, authenticated using (true);
create policy "Admins manage features" on public.plan_features
  for all to authenticated
  using (((select auth.jwt()) -> 'app_metadata' ->> 'role') = 'admin')
  with check (((select auth.jwt()) -> 'app_metadata' ->> 'role') = 'admin');

create table public.changelog (
  id bigint generated always as identity primary key,
  version text not null unique,
  notes text not null,
  released_at timestamptz not null default now()
);
alter table public.changelog enable row level security;
revoke insert, update, delete on public.changelog from anon, authenticated;
create policy "Signed-in users read the changelog" on public.changelog
  for select to authenticated using ((select auth.uid()) is not null);

create table public.waitlist (
  email text primary key check (email ~* '^[^@]+@[^@]+$'),
  source text,
  created_at timestamptz not null default now()
);
alter table public.waitlist enable row level security;
revoke select, update, delete on public.waitlist from anon, authenticated;
create policy "Anyone can join the waitlist" on public.waitlist
  for insert to anon, authenticated with check (true);

create view public.plan_catalog with (security_invoker = true) as
  select p.id, p.name, p.price_cents, p.currency, array_agg(f.feature order by f.feature) as features
  from public.plans p left join public.plan_features f on f.plan_id = p.id
  where p.active
  group by p.id;

create function public.price_with_vat(cents integer, rate numeric) returns integer
language sql immutable security definer set search_path = ''
as $$ select round(cents * (1 + rate))::integer $$;
