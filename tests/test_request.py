"""The request as PostgREST makes it: role settings, search_path, request.* settings read
by a policy, READ ONLY requests, the pre-request function. Each test shows the outcome
production gives, on the worked example's database (its own tables made inside the test)."""

from __future__ import annotations

import base64
import dataclasses
import json

import psycopg
import pytest
from psycopg import sql

from conftest import ALICE, BOB

from pytest_rlscheck.errors import RlscheckUsageError
from pytest_rlscheck.platform_config import PlatformConfig
from pytest_rlscheck.request import function_name, postgrest_path

SETTING = "select current_setting(%s)"
#: A table whose policy reads the request: a row is visible to a GET from the app's
#: origin with the session cookie only.
REQUEST_TABLE = """
create table public.request_seen (id int primary key, note text);
alter table public.request_seen enable row level security;
grant select, insert on public.request_seen to anon, authenticated;
create policy by_request on public.request_seen for select to anon, authenticated using (
  current_setting('request.method', true) = 'GET'
  and current_setting('request.path', true) = '/request_seen'
  and current_setting('request.headers', true)::json ->> 'origin' = 'https://app.example'
  and current_setting('request.cookies', true)::json ->> 'session' = 's1'
);
create policy writes on public.request_seen for insert to anon, authenticated with check (true);
insert into public.request_seen values (1, 'one');
"""
PRE_REQUEST_FN = """
create function public.check_request() returns void language plpgsql as $$
begin
  if current_setting('request.headers', true)::json ->> 'x-banned' = 'yes' then
    raise exception using errcode = 'PT403', message = 'banned client',
      hint = current_user || ' ' || current_setting('request.method');
  end if;
  perform set_config('app.pre_request_ran', current_user, true);
end $$;
grant execute on function public.check_request() to anon, authenticated;
"""


def test_role_settings_come_with_the_request(rls) -> None:
    """statement_timeout is anon's 3s and authenticated's 8s (the shim sets Supabase's),
    lock_timeout authenticator's 8s; the owner's session keeps its own; a plain SET ROLE
    (act_as) does not apply them, as PostgreSQL does not."""
    owner_timeout = rls.scalar(SETTING, ["statement_timeout"])
    assert owner_timeout == "0"
    with rls.as_anon():
        assert rls.scalar(SETTING, ["statement_timeout"]) == "3s"
        assert rls.scalar(SETTING, ["lock_timeout"]) == "8s"
        with rls.as_owner():  # back to the session's own settings inside the block
            assert rls.scalar(SETTING, ["statement_timeout"]) == "0"
            assert rls.scalar(SETTING, ["search_path"]) == rls.owner_fetchall("show search_path")[0][0]
        assert rls.scalar(SETTING, ["statement_timeout"]) == "3s"
    with rls.as_user(ALICE):
        assert rls.scalar(SETTING, ["statement_timeout"]) == "8s"
    with rls.as_service_role():  # no setting of its own: authenticator's
        assert rls.scalar(SETTING, ["statement_timeout"]) == "8s"
    with rls.as_role("anon"):  # a plain role switch
        assert rls.scalar(SETTING, ["statement_timeout"]) == "0"
    assert rls.scalar(SETTING, ["statement_timeout"]) == owner_timeout


def test_a_role_setting_set_by_a_migration_is_applied(rls) -> None:
    """ALTER ROLE authenticated SET ...: read from pg_db_role_setting; a setting for this
    database only is not (PostgREST reads pg_roles.rolconfig, the general ones)."""
    rls.execute("alter role authenticated set statement_timeout = '5s'")
    database = rls.scalar("select current_database()")
    rls.execute(sql.SQL("alter role authenticated in database {} set lock_timeout = '2s'").format(sql.Identifier(database)))
    with rls.as_user(ALICE):
        assert rls.scalar(SETTING, ["statement_timeout"]) == "5s"
        assert rls.scalar(SETTING, ["lock_timeout"]) == "8s"  # authenticator's, not the database-only one


def test_a_statement_over_the_anon_timeout_is_cancelled(rls) -> None:
    rls.execute("alter role anon set statement_timeout = '50ms'")
    with rls.as_anon(), pytest.raises(psycopg.errors.QueryCanceled):
        rls.execute("select pg_sleep(2)")
    assert rls.scalar("select 1") == 1  # the test's transaction goes on


def test_search_path_is_the_exposed_schema_then_extra_search_path(rls) -> None:
    with rls.as_user(ALICE):
        assert rls.scalar(SETTING, ["search_path"]) == '"public", "public", "extensions"'
    rls.config = dataclasses.replace(
        rls.config, platform=PlatformConfig(api_schemas=("api", "public"), extra_search_path=("extensions",))
    )
    with rls.as_anon():
        assert rls.scalar(SETTING, ["search_path"]) == '"api", "extensions"'
    with rls.as_anon(headers={"Accept-Profile": "public"}):
        assert rls.scalar(SETTING, ["search_path"]) == '"public", "extensions"'
    with rls.as_anon(method="POST", headers={"Content-Profile": "public"}):
        assert rls.scalar(SETTING, ["search_path"]) == '"public", "extensions"'
    with pytest.raises(RlscheckUsageError, match=r"schema 'private' .* is not exposed.*406"):
        rls.as_anon(headers={"accept-profile": "private"})


def test_a_policy_reads_method_path_headers_and_cookies(rls) -> None:
    rls.execute(REQUEST_TABLE)
    seen = "select count(*) from request_seen"
    headers = {"Origin": "https://app.example"}
    with rls.as_user(ALICE, path="/rest/v1/request_seen", headers=headers, cookies={"session": "s1"}):
        assert rls.scalar(seen) == 1
        assert rls.scalar(SETTING, ["request.path"]) == "/request_seen"
        sent = json.loads(rls.scalar(SETTING, ["request.headers"]))
    with rls.as_anon(path="/request_seen", headers=headers, cookies={"session": "s1"}):
        assert rls.scalar(seen) == 1
    with rls.as_user(ALICE, method="POST", path="/request_seen", headers=headers, cookies={"session": "s1"}):
        assert rls.scalar(seen) == 0  # not a GET
        assert rls.scalar(SETTING, ["request.method"]) == "POST"
    with rls.as_user(ALICE, path="/request_seen", headers=headers):
        assert rls.scalar(seen) == 0  # no cookie
        assert json.loads(rls.scalar(SETTING, ["request.cookies"])) == {}
    with rls.as_role("authenticated"):  # a plain role switch: no request at all
        assert rls.scalar(seen) == 0
    # the headers supabase-js sends, with placeholder (unsigned) tokens carrying the claims
    assert sent["origin"] == "https://app.example" and sent["accept"] == "application/json"
    bearer = sent["authorization"].removeprefix("Bearer ")
    payload = bearer.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == ALICE and bearer.endswith(".rlscheck-unsigned")
    assert json.loads(base64.urlsafe_b64decode(sent["apikey"].split(".")[1] + "=="))["role"] == "anon"


def test_read_only_request_refuses_writes_and_leaves_the_transaction_writable(rls) -> None:
    rls.execute(REQUEST_TABLE)
    with rls.as_user(ALICE, read_only=True):
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            rls.execute("insert into request_seen values (2, 'two')")
        assert rls.scalar("show transaction_read_only") == "on"
    assert rls.scalar("show transaction_read_only") == "off"
    with rls.as_user(ALICE, method="POST"):
        rls.execute("insert into request_seen values (3, 'three')")
    assert rls.scalar("select count(*) from request_seen") == 2  # the owner sees 1 and 3


def test_pre_request_function_runs_first_and_its_raise_refuses_the_request(rls) -> None:
    rls.execute(PRE_REQUEST_FN)
    rls.execute("alter role authenticator set pgrst.db_pre_request = 'public.check_request'")
    with rls.as_user(ALICE, method="PATCH"):
        assert rls.scalar("select current_setting('app.pre_request_ran', true)") == "authenticated"
    with rls.as_anon(headers={"X-Banned": "yes"}):
        with pytest.raises(psycopg.Error, match="banned client") as refused:
            rls.execute("select 1")
        assert refused.value.sqlstate == "PT403"
        assert refused.value.diag.message_hint == "anon GET"  # as the role, after the request settings
    with rls.as_anon(headers={"X-Banned": "yes"}, pre_request=False):
        assert rls.scalar("select 1") == 1
    with rls.as_role("anon", {"app.x": "1"}):  # not a request: no pre-request
        assert rls.scalar("select 1") == 1


def test_probes_inside_a_request_block_get_no_timeout(rls) -> None:
    """EXPLAIN ANALYZE (a measurement) inside as_anon: no statement_timeout of the request."""
    rls.execute("alter role anon set statement_timeout = '1ms'")
    with rls.as_anon():
        plan = rls.explain("select pg_sleep(0.05)", count_calls=False)
    assert plan is not None


def test_nested_user_requests_restore_the_outer_one(rls) -> None:
    with rls.as_anon(method="DELETE", path="/a"):
        with rls.as_user(BOB, path="/b"):
            assert rls.scalar(SETTING, ["request.path"]) == "/b"
            assert rls.scalar(SETTING, ["request.method"]) == "GET"
            assert rls.scalar(SETTING, ["statement_timeout"]) == "8s"
        assert rls.scalar(SETTING, ["request.path"]) == "/a"
        assert rls.scalar(SETTING, ["request.method"]) == "DELETE"
        assert rls.scalar(SETTING, ["statement_timeout"]) == "3s"
    assert rls.scalar("select current_setting('request.path', true)") in ("", None)


def test_helpers_parse_names_and_paths() -> None:
    assert function_name("public.check") == ("public", "check")
    assert function_name('"My Schema"."Fn"') == ("My Schema", "Fn")
    assert function_name("Check") == (None, "check")
    assert postgrest_path("/rest/v1/todos") == "/todos"
    assert postgrest_path("/rest/v1") == "/"
    assert postgrest_path("rpc/f") == "/rpc/f"
    assert postgrest_path(None) is None


def test_on_a_fresh_database_each_statement_is_a_request_that_commits(rls_fresh_db) -> None:
    """Autocommit: the request's settings are the session's for the block, a deferred
    duplicate fails at the request's real commit, a READ ONLY request commits nothing."""
    rls = rls_fresh_db
    rls.execute("create table public.fresh (id int primary key, code int unique deferrable initially deferred)")
    rls.execute("grant select, insert on public.fresh to anon")
    with rls.as_anon(method="POST", path="/fresh"):
        assert rls.scalar(SETTING, ["statement_timeout"]) == "3s"
        assert rls.scalar(SETTING, ["request.path"]) == "/fresh"
        rls.execute("insert into fresh values (1, 1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            rls.execute("insert into fresh values (2, 1)")
    with rls.as_anon(read_only=True), pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        rls.execute("insert into fresh values (3, 3)")
    assert rls.scalar(SETTING, ["statement_timeout"]) == "0"
    with rls.connect() as other:  # what the requests committed
        assert other.execute("select id from fresh").fetchall() == [(1,)]
