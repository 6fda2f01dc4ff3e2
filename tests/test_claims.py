"""The access token's claims as Supabase Auth issues them, and the custom access token hook.

The claims are read back from the database (``auth.jwt()``, ``current_setting``), where the
policies read them; times are compared with the transaction's now() in SQL, never with the
test's clock. The hook runs in projects of their own (a pytest subprocess each), whose
supabase/config.toml enables it."""

from __future__ import annotations

import textwrap
import uuid

import pytest

from conftest import ALICE
from pytest_rlscheck.access_token import run_hook, user_claims
from pytest_rlscheck.errors import AccessTokenHookError

#: The token's age and skew, computed in SQL against the transaction's now().
TIMES = (
    "select (auth.jwt()->>'exp')::bigint - (auth.jwt()->>'iat')::bigint,"
    " abs(extract(epoch from now()) - (auth.jwt()->>'iat')::bigint) < 60,"
    " (auth.jwt()->'amr'->0->>'timestamp')::bigint = (auth.jwt()->>'iat')::bigint"
)
INSERT_USER = (
    "insert into auth.users (id, aud, role, email, phone, is_anonymous, raw_app_meta_data, raw_user_meta_data)"
    " values (%(id)s, %(aud)s, %(role)s, %(email)s, %(phone)s, %(anonymous)s, '{\"provider\": \"anonymous\"}',"
    " '{}')"
)


def _insert_user(rls, *, aud="authenticated", role="authenticated", email=None, phone=None, anonymous=False):
    user_id = uuid.uuid4()
    rls.execute(INSERT_USER, {"id": user_id, "aud": aud, "role": role, "email": email, "phone": phone,
                              "anonymous": anonymous})
    return user_id


def test_issuer_and_times_follow_the_platform(rls) -> None:
    platform = rls.config.platform
    with rls.as_user(ALICE):
        claims = rls.scalar("select auth.jwt()")
        lifetime, recent, amr_at_iat = rls.fetchone(TIMES)
    assert claims["iss"] == platform.issuer == "http://127.0.0.1:54321/auth/v1"  # the CLI's default
    assert lifetime == platform.jwt_expiry == 3600
    assert recent and amr_at_iat
    assert claims["aal"] == "aal1" and claims["amr"][0]["method"] == "password"
    assert claims["sub"] == ALICE and claims["email"] == "alice@acme.test" and claims["phone"] == ""


def test_session_id_is_one_per_user_and_test(rls) -> None:
    other = rls.create_user("carol@example.test")
    with rls.as_user(ALICE):
        first = rls.scalar("select auth.jwt()->>'session_id'")
    rls.execute("update auth.users set raw_user_meta_data = '{\"x\": 1}' where id = %s", (ALICE,))
    with rls.as_user(ALICE):  # looked up again (the test wrote), the same session
        again = rls.scalar("select auth.jwt()")
    with rls.as_user(other):
        theirs = rls.scalar("select auth.jwt()->>'session_id'")
    assert again["session_id"] == first and again["user_metadata"] == {"x": 1}
    assert uuid.UUID(first) and uuid.UUID(theirs) and theirs != first


def test_aud_role_and_phone_come_from_auth_users(rls) -> None:
    user = _insert_user(rls, aud="partners", role="anon", email="p@example.test", phone="15551234567")
    with rls.as_user(user):
        claims = rls.scalar("select auth.jwt()")
        assert rls.scalar("select current_setting('role')") == "anon"  # PostgREST acts as the token's role
    assert (claims["aud"], claims["role"], claims["phone"]) == ("partners", "anon", "15551234567")
    assert claims["app_metadata"] == {"provider": "anonymous"} and claims["user_metadata"] == {}
    with rls.as_user(user, role="authenticated"):  # an explicit role still wins
        assert rls.scalar("select auth.jwt()->>'role'") == "authenticated"
        assert rls.scalar("select current_user") == "authenticated"


def test_an_anonymous_user_is_refused_by_a_policy_on_is_anonymous(rls) -> None:
    rls.execute("create table public.posts (id int primary key, body text)")
    rls.execute("alter table public.posts enable row level security")
    rls.execute("create policy permanent_only on public.posts for all to authenticated"
                " using ((auth.jwt()->>'is_anonymous')::boolean is false)"
                " with check ((auth.jwt()->>'is_anonymous')::boolean is false)")
    rls.execute("insert into public.posts values (1, 'hello')")
    guest = _insert_user(rls, anonymous=True)
    member = _insert_user(rls, email="member@example.test")
    with rls.as_user(guest):
        assert rls.scalar("select auth.jwt()->>'is_anonymous'") == "true"
        assert rls.scalar("select count(*) from public.posts") == 0
        with pytest.raises(Exception, match="row-level security"):
            rls.execute("insert into public.posts values (2, 'spam')")
    with rls.as_user(member):
        assert rls.scalar("select auth.jwt()->'is_anonymous'") is False
        assert rls.scalar("select count(*) from public.posts") == 1


def test_a_user_without_a_row_gets_signup_defaults(rls) -> None:
    for sub in (uuid.uuid4(), "not-a-uuid"):
        with rls.as_user(sub):
            claims = rls.scalar("select auth.jwt()")
            recent = rls.fetchone(TIMES)[1]
        assert (claims["aud"], claims["role"], claims["is_anonymous"], claims["email"]) == (
            "authenticated", "authenticated", False, "")
        assert claims["sub"] == str(sub) and recent


def test_explicit_claims_are_applied_last(rls) -> None:
    with rls.as_user(ALICE, claims={"aud": "other", "is_anonymous": True, "exp": 1}):
        claims = rls.scalar("select auth.jwt()")
    assert (claims["aud"], claims["is_anonymous"], claims["exp"]) == ("other", True, 1)
    assert claims["iss"] == rls.config.platform.issuer  # the rest as Auth issues it


@pytest.mark.parametrize("enter, role", [("as_anon", "anon"), ("as_service_role", "service_role")])
def test_the_api_keys_claims(rls, enter, role) -> None:
    with getattr(rls, enter)():
        claims = rls.scalar("select auth.jwt()")
        issued_before_now = rls.scalar("select (auth.jwt()->>'iat')::bigint <= extract(epoch from now()) + 1")
        assert rls.scalar("select auth.uid()") is None
    assert set(claims) == {"iss", "ref", "role", "iat", "exp"}
    assert (claims["iss"], claims["ref"], claims["role"]) == ("supabase", rls.config.platform.project_ref, role)
    assert claims["exp"] - claims["iat"] >= 10 * 365 * 24 * 3600 and issued_before_now


def test_a_hook_that_does_not_exist_is_named_and_the_test_goes_on(rls) -> None:
    sub = str(uuid.uuid4())
    with pytest.raises(AccessTokenHookError) as caught:
        run_hook(rls.connection, ("public", "no_such_hook"), sub, user_claims(sub))
    text = str(caught.value)
    assert "ERROR 42883: function public.no_such_hook(jsonb) does not exist" in text
    assert "create the function public.no_such_hook(event jsonb) returns jsonb" in text
    assert rls.scalar("select current_user") == "postgres"  # the savepoint is gone, the role back


def test_a_hook_passing_the_claims_through_returns_them(rls) -> None:
    rls.execute("create function public.passthrough(event jsonb) returns jsonb language sql"
                " as $$ select jsonb_build_object('claims', event->'claims') $$")
    rls.execute("create function public.whoami(event jsonb) returns jsonb language sql"
                " as $$ select jsonb_build_object('claims', event->'claims' || jsonb_build_object('ran_as',"
                " current_user, 'method', event->>'authentication_method', 'for', event->>'user_id')) $$")
    sub = str(uuid.uuid4())
    claims = user_claims(sub, issued_at=1000)
    assert run_hook(rls.connection, ("public", "passthrough"), sub, claims) == claims
    out = run_hook(rls.connection, ("public", "whoami"), sub, claims)
    assert (out["ran_as"], out["method"], out["for"]) == ("supabase_auth_admin", "password", sub)
    assert rls.scalar("select current_user") == "postgres"


# -- the custom access token hook, in projects whose config.toml enables it ------------------

CONFIG_TOML = """
project_id = "claims-demo"

[api]
port = 64321

[auth]
jwt_expiry = 600

[auth.hook.custom_access_token]
enabled = true
uri = "pg-functions://postgres/public/custom_access_token_hook"
"""

#: Supabase's role-based access example: a user_role claim from a table, read by a policy.
#: What the hook does besides depends on the user's email, one behaviour per test.
HOOK = """
create table public.user_roles (user_id uuid primary key, role text not null);
create table public.hook_calls (user_id uuid, at timestamptz default now());
create table public.reports (id int primary key, title text);
alter table public.reports enable row level security;
create policy admins_read on public.reports for select to authenticated
  using ((auth.jwt()->>'user_role') = 'admin');
insert into public.reports values (1, 'q1'), (2, 'q2');

create function public.custom_access_token_hook(event jsonb) returns jsonb language plpgsql as $$
declare
  claims jsonb := event->'claims';
  email text := event->'claims'->>'email';
begin
  insert into public.hook_calls (user_id) values ((event->>'user_id')::uuid);
  if email like 'banned%' then
    return jsonb_build_object('error', jsonb_build_object('http_code', 403, 'message', 'this account is banned'));
  elsif email like 'nosession%' then
    return jsonb_build_object('claims', claims - 'session_id');
  elsif email like 'stringexp%' then
    return jsonb_build_object('claims', jsonb_set(claims, '{exp}', '"later"'));
  elsif email like 'raises%' then
    raise exception 'no role for %', event->>'user_id';
  elsif email like 'noclaims%' then
    return jsonb_build_object('token', claims);
  end if;
  return jsonb_build_object('claims', claims || jsonb_build_object('user_role',
    (select r.role from public.user_roles r where r.user_id = (event->>'user_id')::uuid)));
end $$;
"""
GRANTS = """
grant usage on schema public to supabase_auth_admin;
grant execute on function public.custom_access_token_hook(jsonb) to supabase_auth_admin;
revoke execute on function public.custom_access_token_hook(jsonb) from authenticated, anon, public;
grant select on public.user_roles to supabase_auth_admin;
grant insert on public.hook_calls to supabase_auth_admin;
"""
#: The same, but the grant to supabase_auth_admin forgotten.
NO_GRANT = """
grant usage on schema public to supabase_auth_admin;
revoke execute on function public.custom_access_token_hook(jsonb) from authenticated, anon, public;
grant select on public.user_roles to supabase_auth_admin;
grant insert on public.hook_calls to supabase_auth_admin;
"""

HOOK_TESTS = '''
import pytest
from pytest_rlscheck.errors import AccessTokenHookError

CALLS = "select count(*) from public.hook_calls"


def test_the_hooks_claim_is_what_the_policy_reads(rls):
    admin, reader = rls.create_user("admin@x.test"), rls.create_user("reader@x.test")
    rls.execute("insert into public.user_roles values (%s, 'admin')", (admin,))
    with rls.as_user(admin):
        claims = rls.scalar("select auth.jwt()")
        assert rls.scalar("select count(*) from public.reports") == 2
    with rls.as_user(reader):
        assert rls.scalar("select auth.jwt()->'user_role'") is None
        assert rls.scalar("select count(*) from public.reports") == 0
        with rls.as_user(admin):  # signed in from inside another user's block: the hook runs as Auth
            assert rls.scalar("select count(*) from public.reports") == 2
        assert rls.scalar("select count(*) from public.reports") == 0
    assert claims["user_role"] == "admin"
    assert claims["iss"] == "http://127.0.0.1:64321/auth/v1" and claims["exp"] - claims["iat"] == 600
    assert rls.scalar("select current_user") == "postgres"


def test_the_hook_runs_once_per_identity_until_the_test_writes(rls):
    user = rls.create_user("someone@x.test")
    with rls.as_user(user):
        pass
    with rls.as_user(user):
        pass
    assert rls.scalar(CALLS) == 1
    with rls.as_user(user):  # the query above may have changed auth.users: issued anew
        pass
    assert rls.scalar(CALLS) == 2


@pytest.mark.rls_fresh_db
def test_the_hook_runs_on_a_database_of_the_tests_own(rls):
    admin = rls.create_user("admin@x.test")
    rls.execute("insert into public.user_roles values (%s, 'admin')", (admin,))
    with rls.as_user(admin):
        assert rls.scalar("select auth.jwt()->>'user_role'") == "admin"
        assert rls.scalar("select count(*) from public.reports") == 2
    assert rls.scalar(CALLS) == 1 and rls.scalar("select current_user") == "postgres"


def test_the_keys_carry_the_project_ref(rls):
    with rls.as_anon():
        assert rls.scalar("select auth.jwt()->>'ref'") == "claims-demo"
    assert rls.scalar(CALLS) == 0  # no sign-in, no hook


def test_an_error_object_refuses_the_sign_in(rls):
    user = rls.create_user("banned@x.test")
    with pytest.raises(AccessTokenHookError) as caught:
        rls.as_user(user)
    assert caught.value.status == 403
    assert "refused the sign-in: this account is banned" in str(caught.value)
    assert "Supabase Auth answers HTTP 403" in str(caught.value)
    assert rls.scalar("select current_user") == "postgres" and rls.scalar(CALLS) == 1


@pytest.mark.parametrize("email, expected", [
    ("nosession@x.test", "- session_id: is required"),
    ("stringexp@x.test", "- exp: must be integer, got string"),
    ("noclaims@x.test", "output claims field is missing"),
])
def test_a_token_auth_would_not_sign_is_an_error(rls, email, expected):
    user = rls.create_user(email)
    with pytest.raises(AccessTokenHookError) as caught:
        rls.as_user(user)
    assert caught.value.status == 500 and expected in str(caught.value)


def test_an_exception_in_the_hook_is_postgres_message(rls):
    user = rls.create_user("raises@x.test")
    with pytest.raises(AccessTokenHookError) as caught:
        rls.as_user(user)
    text = str(caught.value)
    assert f"ERROR P0001: no role for {user}" in text and "answers HTTP 500" in text
    assert rls.scalar("select count(*) from public.reports") == 2  # the test's transaction goes on
'''

NO_GRANT_TESTS = '''
import pytest
from pytest_rlscheck.errors import AccessTokenHookError


def test_the_missing_grant_is_named(rls):
    user = rls.create_user("someone@x.test")
    with pytest.raises(AccessTokenHookError) as caught:
        rls.as_user(user)
    text = str(caught.value)
    assert "public.custom_access_token_hook ([auth.hook.custom_access_token]) failed as supabase_auth_admin" in text
    assert "ERROR 42501: permission denied for function custom_access_token_hook" in text
    assert "grant execute on function public.custom_access_token_hook(jsonb) to supabase_auth_admin" in text
    assert rls.scalar("select current_user") == "postgres"


def test_signing_in_fails_the_test(rls):
    with rls.as_user(rls.create_user("someone@x.test")):
        pass
'''


def _hook_project(pytester: pytest.Pytester, grants: str, tests: str) -> None:
    supabase = pytester.path / "supabase"
    (supabase / "migrations").mkdir(parents=True)
    (supabase / "config.toml").write_text(CONFIG_TOML)
    (supabase / "migrations" / "20240101000000_hook.sql").write_text(textwrap.dedent(HOOK) + grants)
    pytester.makepyfile(tests)


def _run(pytester: pytest.Pytester) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240)


def test_the_access_token_hook_as_auth_runs_it(pytester: pytest.Pytester) -> None:
    _hook_project(pytester, GRANTS, HOOK_TESTS)
    result = _run(pytester)
    result.assert_outcomes(passed=9)


def test_a_hook_without_the_grant_fails_the_sign_in_clearly(pytester: pytest.Pytester) -> None:
    _hook_project(pytester, NO_GRANT, NO_GRANT_TESTS)
    result = _run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*AccessTokenHookError: the custom access token hook public.custom_access_token_hook*",
        "*PostgreSQL said: ERROR 42501: permission denied for function custom_access_token_hook",
        "*In production the sign-in fails: Supabase Auth answers HTTP 500 and issues no token.",
        "*Fix: grant execute on function public.custom_access_token_hook(jsonb) to supabase_auth_admin*",
    ])
    assert "psycopg" not in result.stdout.str()  # no driver traceback
