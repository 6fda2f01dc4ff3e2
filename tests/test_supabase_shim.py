"""The Supabase shim behaves like Supabase: auth functions, roles, grants, inlining."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from pytest_rlscheck.supabase import needed_parts

SUB = "33333333-3333-3333-3333-333333333333"


def _set(rls, name: str, value: str) -> None:
    rls.execute("select set_config(%s, %s, true)", [name, value])


def test_uid_reads_the_claims_json(rls) -> None:
    assert rls.scalar("select auth.uid()") is None
    _set(rls, "request.jwt.claims", json.dumps({"sub": SUB, "role": "authenticated", "email": "x@y.z"}))
    assert rls.fetchone("select auth.uid(), auth.role(), auth.email()") == (uuid.UUID(SUB), "authenticated", "x@y.z")
    assert rls.scalar("select auth.jwt() ->> 'email'") == "x@y.z"


def test_legacy_claim_setting_wins_and_empty_means_null(rls) -> None:
    other = "44444444-4444-4444-4444-444444444444"
    _set(rls, "request.jwt.claims", json.dumps({"sub": SUB}))
    _set(rls, "request.jwt.claim.sub", other)
    assert rls.scalar("select auth.uid()") == uuid.UUID(other)
    _set(rls, "request.jwt.claim.sub", "")
    assert rls.scalar("select auth.uid()") == uuid.UUID(SUB)
    _set(rls, "request.jwt.claims", "")
    assert rls.scalar("select auth.uid()") is None
    assert rls.scalar("select auth.jwt()") is None


def test_auth_functions_are_inlinable_sql(rls) -> None:
    rows = rls.fetchall(
        "select p.proname, l.lanname, p.provolatile, p.prosecdef, p.proconfig"
        " from pg_proc p join pg_language l on l.oid = p.prolang"
        " where p.pronamespace = 'auth'::regnamespace order by 1"
    )
    assert rows == [(name, "sql", "s", False, None) for name in ("email", "jwt", "role", "uid")]


def test_planner_inlines_auth_uid_as_in_production(rls) -> None:
    with rls.as_user(SUB):
        plan = "\n".join(
            r[0] for r in rls.fetchall("explain (verbose, costs off) select * from organization_members where user_id = auth.uid()")
        )
    assert "current_setting('request.jwt.claim.sub'::text, true)" in plan
    assert "auth.uid()" not in plan


def test_roles_match_supabase(rls) -> None:
    rows = rls.fetchall(
        "select rolname, rolcanlogin, rolinherit, rolbypassrls, rolsuper from pg_roles"
        " where rolname in ('anon', 'authenticated', 'service_role', 'authenticator', 'postgres') order by 1"
    )
    # the API roles INHERIT since 2023; postgres is not a superuser (NOSUPERUSER ... BYPASSRLS)
    assert rows == [
        ("anon", False, True, False, False),
        ("authenticated", False, True, False, False),
        ("authenticator", True, False, False, False),
        ("postgres", True, True, True, False),
        ("service_role", False, True, True, False),
    ]
    assert rls.fetchone("select rolcreatedb, rolcreaterole, rolreplication from pg_roles where rolname = 'postgres'") == (
        True, True, True)
    for role in ("anon", "authenticated", "service_role"):
        assert rls.scalar("select pg_has_role('authenticator', %s, 'MEMBER')", [role]) is True
        assert rls.scalar("select pg_has_role('postgres', %s, 'MEMBER')", [role]) is True


def test_default_privileges_on_public_are_supabases(rls) -> None:
    rls.execute("create table public.fresh_table (id int)")
    rls.execute("create function public.fresh_fn() returns int language sql as 'select 1'")
    for role in ("anon", "authenticated", "service_role"):
        privileges = rls.scalar(
            "select array_agg(p order by p) from unnest(array['SELECT','INSERT','UPDATE','DELETE','TRUNCATE',"
            "'REFERENCES','TRIGGER']) p where has_table_privilege(%s, 'public.fresh_table', p)",
            [role],
        )
        assert len(privileges) == 7, (role, privileges)
        assert rls.scalar("select has_function_privilege(%s, 'public.fresh_fn()', 'EXECUTE')", [role])
        assert rls.scalar("select has_schema_privilege(%s, 'extensions', 'USAGE')", [role])


def test_auth_users_is_closed_to_api_roles(rls) -> None:
    assert rls.scalar("select relrowsecurity from pg_class where oid = 'auth.users'::regclass") is True
    for role in ("anon", "authenticated"):
        assert rls.scalar("select has_table_privilege(%s, 'auth.users', 'SELECT')", [role]) is False
        assert rls.scalar("select has_schema_privilege(%s, 'auth', 'USAGE')", [role]) is True


def test_extensions_live_in_the_extensions_schema(rls) -> None:
    rows = rls.fetchall(
        "select e.extname, n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace"
        " where e.extname in ('uuid-ossp', 'pgcrypto') order by 1"
    )
    assert rows == [("pgcrypto", "extensions"), ("uuid-ossp", "extensions")]
    assert rls.scalar("select uuid_generate_v4() is not null")  # on the search_path, as on Supabase


@pytest.mark.parametrize(
    "sql, parts",
    [
        ("create policy p on t using (user_id = auth.uid());", ("core", "auth")),
        ("grant select on t to authenticated;", ("core",)),
        ("create policy p on storage.objects using (bucket_id = 'a');", ("core", "storage")),
        ("alter publication supabase_realtime add table t;", ("core", "realtime")),
        ("create table t (id uuid default extensions.uuid_generate_v4());", ("core",)),
        ("-- uses auth.uid() later\ncreate table t (id int);", ()),
        ("create schema auth;\ncreate function auth.uid() returns uuid language sql as $$ select null::uuid $$;", ()),
        ("create function f() returns uuid language sql as $$ select auth.uid() $$;", ("core", "auth")),
        ("grant execute on function public.hook to supabase_auth_admin;", ("core",)),
        ("create policy p on realtime.messages for select using (true);", ("core", "realtime")),
        ("create trigger t after insert on x for each row execute function supabase_functions.http_request();",
         ("core", "functions")),
        # quoted names, as pg_dump and the Supabase dashboard write them
        ('insert into "storage"."buckets" (id, name) values (\'avatars\', \'avatars\');', ("core", "storage")),
        ('create policy p on t using (user_id = "auth"."uid"());', ("core", "auth")),
        ('create table t (id uuid default "extensions"."uuid_generate_v4"());', ("core",)),
        ('create policy p on "realtime"."messages" for select using (true);', ("core", "realtime")),
        ("select myauth.x, t.author_id from t;", ()),  # no schema named auth
    ],
)
def test_shim_parts_follow_what_the_sql_references(sql: str, parts: tuple[str, ...]) -> None:
    assert needed_parts([sql], None) == parts


def test_shim_can_be_forced_either_way() -> None:
    assert needed_parts(["select 1"], True) == ("core", "auth", "storage", "realtime", "functions")
    assert needed_parts(["select auth.uid()"], False) == ()


def test_common_supabase_migration_lines_apply(run_sql, scratch_db) -> None:
    """What real projects' migrations do with Supabase's own objects: they apply, and do
    what they say."""
    from pytest_rlscheck.migrations import SqlFile
    from pytest_rlscheck.supabase import PARTS, shim_sql

    shim = [SqlFile(f"<shim {p}>", shim_sql(p), "shim") for p in PARTS]
    run_sql({f"{i:03d}_{f.display}": f.text for i, f in enumerate(shim)}, kind="shim")
    run_sql(
        {
            "100_app.sql": """
                create function public.custom_access_token_hook(event jsonb) returns jsonb
                  language sql stable as $$ select event $$;
                grant execute on function public.custom_access_token_hook to supabase_auth_admin;
                revoke execute on function public.custom_access_token_hook from authenticated, anon, public;
                create table public.profiles (id uuid primary key references auth.users on delete cascade, name text);
                create function public.handle_new_user() returns trigger language plpgsql security definer
                  set search_path = '' as $$ begin insert into public.profiles (id, name)
                  values (new.id, new.raw_user_meta_data ->> 'full_name'); return new; end $$;
                create trigger on_auth_user_created after insert on auth.users
                  for each row execute procedure public.handle_new_user();
                insert into storage.buckets (id, name, public) values ('avatars', 'avatars', true);
                create policy "Avatar uploads" on storage.objects for insert to authenticated
                  with check (bucket_id = 'avatars' and (select auth.uid())::text = (storage.foldername(name))[1]);
                create policy "Members listen" on realtime.messages for select to authenticated
                  using (realtime.topic() = 'room-1');
                alter publication supabase_realtime add table public.profiles;
                create trigger profiles_webhook after insert on public.profiles for each row
                  execute function supabase_functions.http_request('https://example.test', 'POST', '{}', '{}', '1000');
            """
        }
    )
    hook = "public.custom_access_token_hook(jsonb)"
    with scratch_db.connect() as conn:
        assert conn.execute("select tgname from pg_trigger where tgrelid = 'public.profiles'::regclass"
                            " and not tgisinternal").fetchall() == [("profiles_webhook",)]
        # (the webhook would call pg_net, which the plugin installs with the shim, not this test)
        conn.execute("alter table public.profiles disable trigger profiles_webhook")
        # the sign-up trigger (SECURITY DEFINER, empty search_path) makes the profile
        conn.execute("insert into auth.users (id, raw_user_meta_data) values"
                     " ('11111111-1111-1111-1111-111111111111', '{\"full_name\": \"Alice Archer\"}')")
        assert conn.execute("select id::text, name from public.profiles").fetchall() == [
            ("11111111-1111-1111-1111-111111111111", "Alice Archer")]
        assert conn.execute("select id, public from storage.buckets").fetchall() == [("avatars", True)]
        policies = conn.execute("select schemaname, tablename, policyname, cmd, roles::text[] from pg_policies"
                                " where schemaname in ('storage', 'realtime') order by 1").fetchall()
        assert policies == [("realtime", "messages", "Members listen", "SELECT", ["authenticated"]),
                            ("storage", "objects", "Avatar uploads", "INSERT", ["authenticated"])]
        assert conn.execute("select schemaname, tablename from pg_publication_tables"
                            " where pubname = 'supabase_realtime'").fetchall() == [("public", "profiles")]
        assert conn.execute(
            "select has_function_privilege('supabase_auth_admin', %(f)s, 'execute'),"
            " has_function_privilege('authenticated', %(f)s, 'execute'), has_function_privilege('anon', %(f)s, 'execute')",
            {"f": hook},
        ).fetchone() == (True, False, False)


def test_seeds_that_create_users_the_supabase_way_apply(rls) -> None:
    """The columns seeds set when they create confirmed users by hand, and their identities."""
    rls.execute(
        """
        insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
          recovery_sent_at, last_sign_in_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at,
          confirmation_token, email_change, email_change_token_new, recovery_token)
        values ('00000000-0000-0000-0000-000000000000', '33333333-3333-3333-3333-333333333333', 'authenticated',
          'authenticated', 'carol@example.test', crypt('pw', gen_salt('bf')), now(), now(), now(),
          '{"provider": "email", "providers": ["email"]}', '{}', now(), now(), '', '', '', '');
        insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
        values ('33333333-3333-3333-3333-333333333333', '33333333-3333-3333-3333-333333333333',
          '{"sub": "33333333-3333-3333-3333-333333333333", "email": "Carol@Example.test"}', 'email', now(), now(), now());
        """
    )
    row = rls.fetchone(
        "select u.confirmed_at is not null, i.email, u.is_sso_user from auth.users u"
        " join auth.identities i on i.user_id = u.id where u.id = '33333333-3333-3333-3333-333333333333'"
    )
    assert row == (True, "carol@example.test", False)
    with pytest.raises(psycopg.errors.UniqueViolation):  # one password account per address, as on Supabase
        rls.execute("insert into auth.users (id, email) values (gen_random_uuid(), 'carol@example.test')")
    rls.execute("insert into auth.users (id, email, is_sso_user) values (gen_random_uuid(), 'carol@example.test', true)")


def test_realtime_send_writes_a_broadcast_message(run_sql, scratch_db) -> None:
    from pytest_rlscheck.migrations import SqlFile
    from pytest_rlscheck.supabase import PARTS, shim_sql

    run_sql({f"{i:03d}_shim": SqlFile("", shim_sql(p), "shim").text for i, p in enumerate(PARTS)}, kind="shim")
    run_sql({"100_app.sql": "select realtime.send('{\"n\": 1}'::jsonb, 'note', 'room-1', false);"})
    with scratch_db.connect() as conn:
        assert conn.execute("select topic, event, extension, payload from realtime.messages").fetchall() == [
            ("room-1", "note", "broadcast", {"n": 1})
        ]


# -- the whole auth schema ------------------------------------------------------------------

AUTH_TABLES = [
    "audit_log_entries", "custom_oauth_providers", "flow_state", "identities", "instances", "mfa_amr_claims",
    "mfa_challenges", "mfa_factors", "oauth_authorizations", "oauth_client_states", "oauth_clients",
    "oauth_consents", "one_time_tokens", "refresh_tokens", "saml_providers", "saml_relay_states",
    "schema_migrations", "sessions", "sso_domains", "sso_providers", "users", "webauthn_challenges",
    "webauthn_credentials",
]
#: The tables Auth switched RLS on for (its 2024-06 migration); the later ones have it off.
AUTH_RLS_TABLES = [
    "audit_log_entries", "flow_state", "identities", "instances", "mfa_amr_claims", "mfa_challenges", "mfa_factors",
    "one_time_tokens", "refresh_tokens", "saml_providers", "saml_relay_states", "schema_migrations", "sessions",
    "sso_domains", "sso_providers", "users",
]
CAROL = "33333333-3333-3333-3333-333333333333"
DAVE = "44444444-4444-4444-4444-444444444444"


def _auth_user(rls, user_id: str, email: str, **columns: str) -> None:
    extra = "".join(f", {name}" for name in columns)
    values = "".join(", %s" for _ in columns)
    rls.execute(
        f"insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,"
        f" raw_app_meta_data, raw_user_meta_data, created_at, updated_at{extra})"
        f" values ('00000000-0000-0000-0000-000000000000', %s, 'authenticated', 'authenticated', %s,"
        f" crypt('pw', gen_salt('bf')), now(), '{{\"provider\": \"email\", \"providers\": [\"email\"]}}', '{{}}',"
        f" now(), now(){values})",
        [user_id, email, *columns.values()],
    )


def test_auth_schema_has_every_table_and_type_of_a_current_project(rls) -> None:
    tables = rls.fetchall(
        "select relname, relrowsecurity from pg_class where relnamespace = 'auth'::regnamespace and relkind = 'r'"
        " order by 1"
    )
    assert [t for t, _ in tables] == AUTH_TABLES
    assert [t for t, rls_on in tables if rls_on] == AUTH_RLS_TABLES
    enums = dict(
        rls.fetchall(
            "select t.typname, array_agg(e.enumlabel::text order by e.enumsortorder) from pg_type t"
            " join pg_enum e on e.enumtypid = t.oid where t.typnamespace = 'auth'::regnamespace group by 1"
        )
    )
    assert enums == {
        "aal_level": ["aal1", "aal2", "aal3"],
        "code_challenge_method": ["s256", "plain"],
        "factor_status": ["unverified", "verified"],
        "factor_type": ["totp", "webauthn", "phone"],
        "oauth_authorization_status": ["pending", "approved", "denied", "expired"],
        "oauth_client_type": ["public", "confidential"],
        "oauth_registration_type": ["dynamic", "manual"],
        "oauth_response_type": ["code"],
        "one_time_token_type": ["confirmation_token", "reauthentication_token", "recovery_token",
                                "email_change_token_new", "email_change_token_current", "phone_change_token"],
    }


def test_auth_users_has_all_its_columns_with_supabases_types(rls) -> None:
    rows = rls.fetchall(
        "select column_name, data_type, character_maximum_length, is_nullable, is_generated, column_default"
        " from information_schema.columns where table_schema = 'auth' and table_name = 'users'"
        " order by ordinal_position"
    )
    columns = {name: (kind, length, nullable, generated, default) for name, kind, length, nullable, generated, default in rows}
    assert list(columns) == [
        "instance_id", "id", "aud", "role", "email", "encrypted_password", "email_confirmed_at", "invited_at",
        "confirmation_token", "confirmation_sent_at", "recovery_token", "recovery_sent_at", "email_change_token_new",
        "email_change", "email_change_sent_at", "last_sign_in_at", "raw_app_meta_data", "raw_user_meta_data",
        "is_super_admin", "created_at", "updated_at", "phone", "phone_confirmed_at", "phone_change",
        "phone_change_token", "phone_change_sent_at", "confirmed_at", "email_change_token_current",
        "email_change_confirm_status", "banned_until", "reauthentication_token", "reauthentication_sent_at",
        "is_sso_user", "deleted_at", "is_anonymous",
    ]
    assert columns["id"][:3] == ("uuid", None, "NO")
    assert columns["email"][:2] == ("character varying", 255)
    assert columns["phone"][:2] == ("text", None)
    assert columns["raw_app_meta_data"][0] == columns["raw_user_meta_data"][0] == "jsonb"
    assert columns["is_super_admin"][0] == "boolean"
    assert columns["confirmed_at"][3] == "ALWAYS"
    assert columns["is_sso_user"][2:] == ("NO", "NEVER", "false")
    assert columns["is_anonymous"][2:] == ("NO", "NEVER", "false")
    assert columns["deleted_at"][0] == columns["banned_until"][0] == "timestamp with time zone"
    assert columns["email_change_confirm_status"][0] == "smallint"
    identity = dict(
        rls.fetchall(
            "select column_name, is_generated from information_schema.columns"
            " where table_schema = 'auth' and table_name = 'identities'"
        )
    )
    assert identity["email"] == "ALWAYS" and "provider_id" in identity


def test_a_seed_with_sessions_tokens_and_factors_cascades_when_the_user_goes(rls) -> None:
    _auth_user(rls, CAROL, "carol@example.test")
    seed = """
        insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
        values (%(u)s::text, %(u)s::uuid, jsonb_build_object('sub', %(u)s::text, 'email', 'carol@example.test'), 'email',
          now(), now(), now());
        insert into auth.audit_log_entries (instance_id, id, payload, created_at)
        values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(),
          '{"action": "login", "actor_id": "33333333-3333-3333-3333-333333333333"}', now());
        insert into auth.sessions (id, user_id, created_at, updated_at, aal, not_after, refreshed_at, user_agent, ip)
        values ('55555555-5555-5555-5555-555555555555', %(u)s, now(), now(), 'aal1', now() + interval '1 day',
          now()::timestamp, 'seed', '127.0.0.1');
        insert into auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id)
        values ('00000000-0000-0000-0000-000000000000', 'tok-1', %(u)s::text, false, now(), now(),
          '55555555-5555-5555-5555-555555555555');
        insert into auth.mfa_amr_claims (session_id, created_at, updated_at, authentication_method, id)
        values ('55555555-5555-5555-5555-555555555555', now(), now(), 'password', gen_random_uuid());
        insert into auth.mfa_factors (id, user_id, friendly_name, factor_type, status, created_at, updated_at)
        values ('66666666-6666-6666-6666-666666666666', %(u)s, 'phone app', 'totp', 'verified', now(), now());
        insert into auth.mfa_challenges (id, factor_id, created_at, ip_address)
        values (gen_random_uuid(), '66666666-6666-6666-6666-666666666666', now(), '127.0.0.1');
        insert into auth.one_time_tokens (id, user_id, token_type, token_hash, relates_to)
        values (gen_random_uuid(), %(u)s, 'confirmation_token', 'abc123', 'carol@example.test');
    """
    for statement in seed.split(";")[:-1]:  # one at a time: parameters allow no more
        rls.execute(statement, {"u": CAROL})
    joined = rls.fetchone(
        "select u.email, s.aal::text, r.id is not null, i.email from auth.users u"
        " join auth.sessions s on s.user_id = u.id join auth.refresh_tokens r on r.session_id = s.id"
        " join auth.identities i on i.user_id = u.id where u.id = %s",
        [CAROL],
    )
    assert joined == ("carol@example.test", "aal1", True, "carol@example.test")
    rls.execute("delete from auth.users where id = %s", [CAROL])
    left = rls.fetchone(
        "select (select count(*) from auth.identities), (select count(*) from auth.sessions),"
        " (select count(*) from auth.refresh_tokens), (select count(*) from auth.mfa_amr_claims),"
        " (select count(*) from auth.mfa_factors), (select count(*) from auth.mfa_challenges),"
        " (select count(*) from auth.one_time_tokens), (select count(*) from auth.audit_log_entries)"
    )
    assert left == (0, 0, 0, 0, 0, 0, 0, 1)  # the audit trail has no foreign key: it stays


def test_auth_keys_and_checks_refuse_what_supabase_refuses(rls) -> None:
    _auth_user(rls, CAROL, "carol@example.test", confirmation_token="", phone="15550001")
    _auth_user(rls, DAVE, "dave@example.test", confirmation_token="")  # empty tokens may repeat
    identity = (
        "insert into auth.identities (provider_id, user_id, identity_data, provider)"
        " values ('gh-1', %s, '{}', 'github')"
    )
    rls.execute(identity, [CAROL])
    refused = [
        (psycopg.errors.UniqueViolation, identity, [DAVE]),  # one account per provider identity
        (psycopg.errors.UniqueViolation, "update auth.users set phone = '15550001' where id = %s", [DAVE]),
        (psycopg.errors.CheckViolation, "update auth.users set email_change_confirm_status = 3 where id = %s", [DAVE]),
        (psycopg.errors.InvalidTextRepresentation,
         "insert into auth.sessions (id, user_id, aal) values (gen_random_uuid(), %s, 'aal9')", [DAVE]),
        (psycopg.errors.ForeignKeyViolation,
         "insert into auth.sessions (id, user_id) values (gen_random_uuid(), gen_random_uuid())", None),
        (psycopg.errors.NotNullViolation,
         "insert into auth.identities (provider_id, user_id, provider) values ('x', %s, 'email')", [DAVE]),
        (psycopg.errors.GeneratedAlways, "update auth.users set confirmed_at = now() where id = %s", [DAVE]),
        (psycopg.errors.CheckViolation,
         "insert into auth.one_time_tokens (id, user_id, token_type, token_hash, relates_to)"
         " values (gen_random_uuid(), %s, 'recovery_token', '', 'x')", [DAVE]),
    ]
    for error, statement, params in refused:
        with pytest.raises(error):
            rls.execute(statement, params)
    rls.execute("update auth.users set confirmation_token = 'tok-abc' where id = %s", [CAROL])
    with pytest.raises(psycopg.errors.UniqueViolation):  # a real (non-numeric) token is unique
        rls.execute("update auth.users set confirmation_token = 'tok-abc' where id = %s", [DAVE])
    token = (
        "insert into auth.one_time_tokens (id, user_id, token_type, token_hash, relates_to)"
        " values (gen_random_uuid(), %s, 'recovery_token', %s, 'x')"
    )
    rls.execute(token, [DAVE, "h1"])
    with pytest.raises(psycopg.errors.UniqueViolation):  # one token of a kind per user
        rls.execute(token, [DAVE, "h2"])


def test_api_roles_get_no_auth_table_and_authenticated_cannot_read_users(rls) -> None:
    privileges = "'SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'"
    granted = rls.fetchall(
        f"select r, c.relname, p from unnest(array['anon', 'authenticated', 'service_role', 'authenticator']) r"
        f" cross join pg_class c cross join unnest(array[{privileges}]) p"
        f" where c.relnamespace = 'auth'::regnamespace and c.relkind in ('r', 'S')"
        f" and has_table_privilege(r, c.oid, p)"
    )
    assert granted == []
    for role in ("anon", "authenticated", "service_role"):
        assert rls.scalar("select has_function_privilege(%s, 'auth.uid()', 'EXECUTE')", [role])
    _auth_user(rls, CAROL, "carol@example.test")
    with rls.as_user(CAROL):
        assert rls.scalar("select auth.uid()") == uuid.UUID(CAROL)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table users"):
            rls.execute("select email from auth.users")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table sessions"):
            rls.execute("select * from auth.sessions")


def test_auth_ownership_and_grants_are_supabases(rls) -> None:
    owners = rls.fetchall(
        "select distinct pg_get_userbyid(relowner) from pg_class where relnamespace = 'auth'::regnamespace"
        " and relkind in ('r', 'S', 'i')"
        " union select distinct pg_get_userbyid(proowner) from pg_proc where pronamespace = 'auth'::regnamespace"
        " union select distinct pg_get_userbyid(typowner) from pg_type"
        " where typnamespace = 'auth'::regnamespace and typtype = 'e'"
    )
    assert owners == [("supabase_auth_admin",)]
    assert rls.scalar("select pg_get_userbyid(nspowner) from pg_namespace where nspname = 'auth'") == "supabase_admin"
    for role, privilege in (("supabase_auth_admin", "CREATE"), ("dashboard_user", "CREATE"), ("anon", "USAGE")):
        assert rls.scalar("select has_schema_privilege(%s, 'auth', %s)", [role, privilege]), (role, privilege)
    assert not rls.scalar("select has_schema_privilege('authenticated', 'auth', 'CREATE')")
    missing = rls.fetchall(
        "select c.relname from pg_class c where c.relnamespace = 'auth'::regnamespace and c.relkind = 'r'"
        " and not has_table_privilege('dashboard_user', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER')"
    )
    assert missing == []
    assert rls.scalar("select has_sequence_privilege('dashboard_user', 'auth.refresh_tokens_id_seq', 'USAGE')")
    # postgres's own entry, as Supabase has it: SELECT passable on (e.g. to a view's readers)
    acl = rls.scalar("select relacl::text[] from pg_class where oid = 'auth.users'::regclass")
    assert any(a.startswith("postgres=") and "r*" in a for a in acl), acl
    assert any(a.startswith("dashboard_user=") for a in acl), acl


def test_supabase_style_project_with_auth_trigger_and_seed_runs(pytester: pytest.Pytester) -> None:
    """A migration that hooks auth.users, a seed that signs users up the Supabase way (users,
    identities, sessions, audit log), and the rls checks on top, end to end."""
    from conftest import write_project

    write_project(
        pytester,
        {
            "20240101000000_profiles.sql": """
                create table public.profiles (
                  id uuid primary key references auth.users (id) on delete cascade,
                  full_name text,
                  last_seen_session uuid references auth.sessions (id) on delete set null
                );
                alter table public.profiles enable row level security;
                create policy own_profile on public.profiles for all to authenticated
                  using (id = (select auth.uid())) with check (id = (select auth.uid()));
                create function public.handle_new_user() returns trigger
                language plpgsql security definer set search_path = '' as $$
                begin
                  insert into public.profiles (id, full_name) values (new.id, new.raw_user_meta_data ->> 'full_name');
                  return new;
                end $$;
                create trigger on_auth_user_created after insert on auth.users
                  for each row execute function public.handle_new_user();
                create view public.my_sessions with (security_invoker = true) as
                  select s.id, s.aal from auth.sessions s where s.user_id = (select auth.uid());
            """
        },
        seed="""
            insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
              raw_app_meta_data, raw_user_meta_data, created_at, updated_at, confirmation_token, recovery_token,
              email_change_token_new, email_change)
            select '00000000-0000-0000-0000-000000000000', u.id, 'authenticated', 'authenticated', u.email,
              extensions.crypt('password', extensions.gen_salt('bf')), now(),
              '{"provider": "email", "providers": ["email"]}', jsonb_build_object('full_name', u.name),
              now(), now(), '', '', '', ''
            from (values ('11111111-1111-1111-1111-111111111111'::uuid, 'alice@example.test', 'Alice'),
                         ('22222222-2222-2222-2222-222222222222'::uuid, 'bob@example.test', 'Bob')) u (id, email, name);
            insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
            select id::text, id, jsonb_build_object('sub', id::text, 'email', email), 'email', now(), now(), now()
            from auth.users;
            insert into auth.sessions (id, user_id, created_at, updated_at, aal)
            select gen_random_uuid(), id, now(), now(), 'aal1'::auth.aal_level from auth.users;
            insert into auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
            select instance_id, gen_random_uuid(), json_build_object('action', 'user_signedup', 'actor_id', id), now(), ''
            from auth.users;
            update public.profiles p set last_seen_session = s.id from auth.sessions s where s.user_id = p.id;
        """,
    )
    pytester.makepyfile(
        """
        import psycopg, pytest

        ALICE = "11111111-1111-1111-1111-111111111111"

        def test_trigger_and_seed(rls):
            assert rls.scalar("select count(*) from public.profiles where full_name is not null") == 2
            assert rls.scalar("select count(*) from auth.audit_log_entries") == 2
            with rls.as_user(ALICE):
                assert rls.fetchall("select full_name from public.profiles") == [("Alice",)]
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    rls.execute("select * from auth.users")

        def test_a_user_deleted_takes_profile_and_sessions(rls):
            rls.execute("delete from auth.users where id = %s", [ALICE])
            assert rls.fetchone(
                "select (select count(*) from public.profiles), (select count(*) from auth.sessions),"
                " (select count(*) from auth.identities)"
            ) == (1, 1, 1)
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--rlscheck-migrations", "migrations", "--rlscheck-seed", "seed.sql",
        "--rlscheck", "-rA", timeout=240,
    )
    out = result.stdout.str()
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, out
    assert outcomes.get("passed", 0) >= 2, out
