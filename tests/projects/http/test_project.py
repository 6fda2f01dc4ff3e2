"""A Supabase project that calls out with the http extension (stand-in: no request is sent)."""

from __future__ import annotations

import psycopg
import pytest

ALICE = "11111111-1111-1111-1111-111111111111"
MESSAGE = "the http extension is a stand-in under pytest-rlscheck; no HTTP request is sent in tests"


def test_the_extension_and_the_function_are_created(rls):
    assert rls.fetchone("select extversion, extnamespace::regnamespace::text from pg_extension where extname = 'http'") == (
        "1.6",
        "extensions",
    )
    assert rls.scalar("select to_regprocedure('public.fetch_weather(text)') is not null")
    assert rls.scalar("select has_function_privilege('authenticated', 'public.fetch_weather(text)', 'execute')")
    assert not rls.scalar("select has_function_privilege('anon', 'public.fetch_weather(text)', 'execute')")


def test_calling_it_raises_a_clear_error(rls):
    with rls.as_user(ALICE), pytest.raises(psycopg.errors.FeatureNotSupported) as error:
        rls.execute("select public.fetch_weather('São Paulo')")
    assert error.value.diag.sqlstate == "0A000"
    assert error.value.diag.message_primary == f"http(): {MESSAGE}"
    assert error.value.diag.message_detail == (
        "The request would have been: GET https://api.weather.example.com/v1/current?q=S%C3%A3o+Paulo"
    )


def test_the_shorthands_raise_with_their_own_name(rls):
    city = rls.scalar("select id from public.cities where name = 'Oslo'")
    with pytest.raises(psycopg.errors.FeatureNotSupported, match=rf"^http_post\(\): {MESSAGE}"):
        rls.execute("select public.post_city(%s)", (city,))
    with pytest.raises(psycopg.errors.FeatureNotSupported, match=r"^http_get\(\): "):
        rls.execute("select extensions.http_get('https://example.com', '{\"a\": 1}'::jsonb)")


def test_what_needs_no_network_works(rls):
    assert rls.scalar("select extensions.urlencode('a b&c')") == "a+b%26c"
    assert rls.scalar("select extensions.urlencode(jsonb_build_object('q', 'x y', 'n', 2))") == "n=2&q=x+y"
    assert rls.scalar("select (extensions.http_header('Accept', 'text/plain')).value") == "text/plain"
    assert rls.scalar("select extensions.http_set_curlopt('CURLOPT_TIMEOUT', '5')") is True
    assert rls.fetchall("select * from extensions.http_list_curlopt()") == [("CURLOPT_TIMEOUT", "5")]


def test_a_test_can_swap_the_caller_for_a_fake(rls):
    rls.execute(
        "create or replace function public.fetch_weather(city text) returns jsonb language sql"
        " as $$ select jsonb_build_object('city', city, 'temp_c', 21) $$"
    )
    with rls.as_user(ALICE):
        assert rls.scalar("select public.fetch_weather('Oslo') ->> 'temp_c'") == "21"
