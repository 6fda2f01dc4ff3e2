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
        " where rolname in ('anon', 'authenticated', 'service_role', 'authenticator') order by 1"
    )
    assert rows == [
        ("anon", False, False, False, False),
        ("authenticated", False, False, False, False),
        ("authenticator", True, False, False, False),
        ("service_role", False, False, True, False),
    ]
    for role in ("anon", "authenticated", "service_role"):
        assert rls.scalar("select pg_has_role('authenticator', %s, 'MEMBER')", [role]) is True


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


def test_common_supabase_migration_lines_apply(run_sql) -> None:
    """What real projects' migrations do with Supabase's own objects."""
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
