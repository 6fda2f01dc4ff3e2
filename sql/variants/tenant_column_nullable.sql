-- The backfill's NOT NULL undone.
-- expect: tenant-column-nullable public.messages
alter table public.messages alter column organization_id drop not null;
