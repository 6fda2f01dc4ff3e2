"""A Supabase project whose trigger calls an edge function through pg_net (stand-in)."""

from __future__ import annotations

import json

import psycopg
import pytest

ALICE = "11111111-1111-1111-1111-111111111111"
BOB = "22222222-2222-2222-2222-222222222222"
EDGE_FUNCTION = "https://abcdefghijklmnopqrst.supabase.co/functions/v1/order-created"


def _queued(rls, url):
    return rls.fetchall(
        "select method, url, headers, convert_from(body, 'UTF8')::jsonb, timeout_milliseconds"
        " from net.http_request_queue where url = %s order by id",
        (url,),
    )


def test_pg_net_is_an_installed_extension(rls):
    assert rls.scalar("select extversion from pg_extension where extname = 'pg_net'") == "0.19.5"
    assert rls.scalar("select extnamespace::regnamespace::text from pg_extension where extname = 'pg_net'") == "extensions"


def test_the_seed_order_was_queued_for_the_edge_function(rls):
    [(method, url, headers, body, timeout)] = _queued(rls, EDGE_FUNCTION)
    assert (method, url, timeout) == ("POST", EDGE_FUNCTION, 3000)
    assert headers["Content-Type"] == "application/json"
    assert body["type"] == "INSERT" and body["table"] == "orders"
    assert body["record"]["customer_id"] == BOB


def test_an_insert_by_a_signed_in_user_queues_the_webhook(rls):
    with rls.as_user(ALICE):
        rls.execute("insert into public.orders (total_cents) values (4200)")
        assert rls.scalar("select count(*) from public.orders") == 1  # RLS: only her own
    requests = _queued(rls, EDGE_FUNCTION)
    assert len(requests) == 2
    record = requests[-1][3]["record"]
    assert record["customer_id"] == ALICE and record["total_cents"] == 4200


def test_a_refused_insert_queues_nothing(rls):
    with rls.as_user(ALICE), pytest.raises(psycopg.errors.InsufficientPrivilege):
        rls.execute(f"insert into public.orders (customer_id, total_cents) values ('{BOB}', 100)")
    assert len(_queued(rls, EDGE_FUNCTION)) == 1


def test_http_get_encodes_params_and_returns_the_request_id(rls):
    request_id = rls.scalar("select public.ping_status_page()")
    row = rls.fetchone("select id, method, url from net.http_request_queue where id = %s", (request_id,))
    assert row == (request_id, "GET", "https://status.example.com/ping?source=orders%20db")


def test_who_may_call_net_functions_is_as_on_supabase(rls):
    for role in ("anon", "authenticated", "service_role"):
        assert rls.scalar(
            "select has_function_privilege(%s, 'net.http_post(text, jsonb, jsonb, jsonb, integer)', 'execute')", (role,)
        )
    assert rls.scalar("select prosecdef from pg_proc where oid = 'net.http_post(text,jsonb,jsonb,jsonb,integer)'::regprocedure")
    with rls.as_anon():
        request_id = rls.scalar("select net.http_get('https://example.com/anon')")
    assert request_id is not None


def test_no_response_ever_arrives(rls):
    request_id = rls.scalar("select net.http_get('https://example.com/x')")
    status, message, response = rls.fetchone(
        "select (r).status, (r).message, (r).response from (select net._http_collect_response(%s) as r) s",
        (request_id,),
    )
    assert (status, message, response) == ("ERROR", "request matching request_id not found", None)
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="pg_net is a stand-in"):
        rls.execute("select net._http_collect_response(%s, async := false)", (request_id,))


def test_a_test_can_play_the_server_answer(rls):
    request_id = rls.scalar("select net.http_get('https://example.com/y')")
    rls.execute(
        "insert into net._http_response (id, status_code, content_type, headers, content, timed_out)"
        " values (%s, 200, 'application/json', '{}', %s, false)",
        (request_id, json.dumps({"ok": True})),
    )
    status, body = rls.fetchone(
        "select (r).status, ((r).response).body from (select net._http_collect_response(%s, false) as r) s",
        (request_id,),
    )
    assert status == "SUCCESS" and json.loads(body) == {"ok": True}
