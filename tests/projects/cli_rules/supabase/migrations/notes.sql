-- Scratch notes kept next to the migrations. The Supabase CLI skips this file (its name has
-- no version): if it ran, this statement would fail the build.
select this_is_not_sql from nowhere;
