"""A Supabase project with plv8 functions and a plv8 trigger (stand-in: created, never run)."""

from __future__ import annotations

import psycopg
import pytest

ALICE = "11111111-1111-1111-1111-111111111111"


def test_the_functions_are_plv8_functions(rls):
    assert rls.fetchone("select extversion, extnamespace::regnamespace::text from pg_extension where extname = 'plv8'") == (
        "3.1.10",
        "pg_catalog",
    )
    rows = rls.fetchall(
        "select p.proname, l.lanname, p.provolatile, p.proisstrict from pg_proc p join pg_language l on l.oid = p.prolang"
        " where p.pronamespace = 'public'::regnamespace and p.proname in ('slugify', 'profiles_set_slug') order by 1"
    )
    assert rows == [("profiles_set_slug", "plv8", "v", False), ("slugify", "plv8", "i", True)]
    assert rls.scalar("select has_function_privilege('anon', 'public.slugify(text)', 'execute')")


def test_calling_a_plv8_function_raises_a_clear_error(rls):
    with rls.as_anon(), pytest.raises(psycopg.errors.FeatureNotSupported) as error:
        rls.execute("select public.slugify('Hello World')")
    assert error.value.diag.message_primary == (
        "plv8 function slugify() cannot run under pytest-rlscheck: plv8 is a stand-in"
    )


def test_the_plv8_trigger_raises_too(rls):
    with pytest.raises(psycopg.errors.FeatureNotSupported, match=r"^plv8 function profiles_set_slug\(\) cannot run"):
        rls.execute(f"insert into public.profiles (id, username) values ('{ALICE}', 'Alice A.')")


def test_the_javascript_source_is_kept(rls):
    source = rls.scalar("select source from rlscheck_plv8.sources where funcid = 'public.slugify(text)'::regprocedure")
    assert ".toLowerCase()" in source and "return input" in source
    trigger = rls.scalar("select source from rlscheck_plv8.sources where signature = 'public.profiles_set_slug()'")
    assert "plv8.find_function('public.slugify')" in trigger


def test_a_test_can_replace_a_plv8_function(rls):
    rls.execute(
        "create or replace function public.slugify(input text) returns text language sql immutable strict"
        " as $$ select trim(both '-' from regexp_replace(lower(input), '[^a-z0-9]+', '-', 'g')) $$"
    )
    rls.execute(
        "create or replace function public.profiles_set_slug() returns trigger language plpgsql"
        " as $$ begin new.slug := public.slugify(new.username); return new; end $$"
    )
    rls.execute(f"insert into public.profiles (id, username) values ('{ALICE}', 'Alice A.')")
    with rls.as_user(ALICE):
        assert rls.scalar("select slug from public.profiles") == "alice-a"


def test_do_blocks_in_plv8_are_refused(rls):
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="does not support inline code execution"):
        rls.execute("do language plv8 $$ plv8.elog(NOTICE, 'hi') $$")
