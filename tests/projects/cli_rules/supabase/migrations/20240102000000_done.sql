-- A pg_dump-style header: it must not reach the next file (the CLI resets each session).
set check_function_bodies = false;
select pg_catalog.set_config('search_path', '', false);
alter table public.todos add column done boolean not null default false;
