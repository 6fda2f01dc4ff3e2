-- Housekeeping jobs, as the Supabase docs show them.
create extension if not exists pg_cron with schema pg_catalog;

grant usage on schema cron to postgres;
grant all privileges on all tables in schema cron to postgres;

select cron.schedule('nightly', '0 3 * * *', $$delete from public.sessions where expires_at < now()$$);

select cron.schedule(
  'refresh-stats',
  '*/10 * * * *',
  $$select count(*) from public.sessions$$
);

select cron.schedule('heartbeat', '30 seconds', 'select 1');

-- a job that was added and then dropped again
select cron.schedule('old-cleanup', '@daily', 'select 2');
select cron.unschedule('old-cleanup');

-- rescheduling by name replaces the job
select cron.schedule('refresh-stats', '*/15 * * * *', $$select count(*) from public.sessions$$);
