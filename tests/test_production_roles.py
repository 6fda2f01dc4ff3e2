"""Who runs what, as on Supabase: migrations, seeds and the tests' owner side as a
``postgres`` without superuser (supautils' exceptions and no more), sign-up as Supabase
Auth, API roles that inherit, and the new-table grants config.toml decides."""

from __future__ import annotations

import textwrap

import psycopg

import pytest

from conftest import write_project

from pytest_rlscheck.owner import elevated

RUN = ("-p", "no:cacheprovider", "--rlscheck-migrations=migrations", "--rlscheck-seed=seed.sql")


def _run(pytester: pytest.Pytester, migrations: dict[str, str], tests: str, seed: str = "", config: str = "") -> pytest.RunResult:
    write_project(pytester, migrations, seed)
    if config:
        pytester.path.joinpath("supabase").mkdir(exist_ok=True)
        pytester.path.joinpath("supabase", "config.toml").write_text(textwrap.dedent(config))
    pytester.makepyfile(test_it=textwrap.dedent(tests))
    return pytester.runpytest_subprocess(*RUN, timeout=240)


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("create index users_email_lower on auth.users (lower(email));", "must be owner of table users"),
        ("alter table storage.objects enable row level security;", "must be owner of table objects"),
        ("create extension pageinspect;", "permission denied to create extension"),
    ],
)
def test_a_migration_only_a_superuser_may_run_fails_as_on_db_reset(pytester, statement, message) -> None:
    # (the grant makes it a Supabase project: without the shim, postgres is a superuser)
    migration = f"create table t (id int);\ngrant select on t to authenticated;\n{statement}\n"
    result = _run(pytester, {"20240101000000_init.sql": migration}, "def test_x(rls):\n    pass\n")
    out = result.stdout.str()
    assert result.ret != 0
    assert "20240101000000_init.sql:3" in out and message in out and "42501" in out
    assert "Traceback" not in out


OWNER_SIDE = {
    "20240101000000_init.sql": """
        -- what supautils lets postgres do as the superuser
        create extension if not exists pg_trgm with schema extensions;
        create policy "own files" on storage.objects for select to authenticated
          using (owner = auth.uid());
        create table public.notes (id int primary key, body text);
        alter table public.notes enable row level security;
        create policy notes_read on public.notes for select to authenticated using (true);
        -- a group role the API role inherits
        create role note_readers nologin;
        revoke all on public.notes from authenticated;
        grant select on public.notes to note_readers;
        grant note_readers to authenticated;
    """,
}
OWNER_TESTS = """
    import psycopg
    import pytest

    def test_migrations_ran_as_postgres(rls):
        assert rls.scalar("select current_user") == "postgres"
        assert rls.scalar("select rolsuper from pg_roles where rolname = current_user") is False
        assert rls.scalar("select tableowner from pg_tables where tablename = 'notes'") == "postgres"
        # a privileged extension is created by the superuser, as supautils does
        assert rls.scalar("select extowner::regrole::text from pg_extension where extname = 'pg_trgm'") == "supabase_admin"
        assert rls.scalar("select count(*) from pg_policies where tablename = 'objects'") == 1

    def test_the_owner_side_may_not_alter_platform_tables(rls):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            rls.execute("alter table storage.objects add column extra int")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            rls.execute("create index on auth.users (phone)")
        with rls.as_owner():
            assert rls.scalar("select current_user") == "postgres"
        assert rls.scalar("select count(*) from auth.users") == 0  # its grants hold

    def test_an_api_role_inherits_a_group_roles_grant(rls):
        rls.execute("insert into notes values (1, 'hello')")
        with rls.as_user("11111111-1111-1111-1111-111111111111"):
            assert rls.scalar("select body from notes") == "hello"
"""


def test_migrations_and_the_owner_side_run_as_supabases_postgres(pytester) -> None:
    result = _run(pytester, OWNER_SIDE, OWNER_TESTS)
    result.assert_outcomes(passed=3)


SIGN_UP = {
    "20240101000000_profiles.sql": """
        create table public.profiles (id uuid primary key references auth.users on delete cascade, email text);
        alter table public.profiles enable row level security;
        create function public.{name}() returns trigger language plpgsql {definer} as $$
        begin
          insert into {table} (id, email) values (new.id, new.email);
          return new;
        end $$;
        create trigger on_auth_user_created after insert on auth.users
          for each row execute function public.{name}();
    """,
}
SEED = """
    insert into auth.users (id, email, aud, role) values
      ('22222222-2222-2222-2222-222222222222', 'seeded@example.test', 'authenticated', 'authenticated');
"""
SIGN_UP_TESTS = """
    import pytest
    from pytest_rlscheck.errors import SignUpFailed

    def test_seed_ran_as_postgres(rls):
        assert rls.scalar("select count(*) from profiles") == 1

    def test_sign_up(rls):
        {body}
"""


@pytest.mark.parametrize(
    ("definer", "table", "body"),
    [
        # no SECURITY DEFINER: the trigger runs as supabase_auth_admin, which has no right on profiles
        ("", "public.profiles", "with pytest.raises(SignUpFailed, match='permission denied for table profiles') as e:\n"
         "            rls.create_user('new@example.test')\n        assert e.value.sqlstate == '42501'"),
        # SECURITY DEFINER, but an unqualified name under Auth's search_path (auth)
        ("security definer", "profiles", "with pytest.raises(SignUpFailed, match='relation \"profiles\" does not exist') as e:\n"
         "            rls.create_user('new@example.test')\n        assert e.value.sqlstate == '42P01'"),
        # what the Supabase docs write: SECURITY DEFINER and a qualified name
        ("security definer set search_path = ''", "public.profiles",
         "user = rls.create_user('new@example.test')\n"
         "        assert rls.scalar('select email from profiles where id = %s', [user]) == 'new@example.test'\n"
         "        assert rls.scalar('select provider from auth.identities where user_id = %s', [user]) == 'email'"),
    ],
)
def test_sign_up_runs_as_supabase_auth_and_the_seed_as_postgres(pytester, definer, table, body) -> None:
    migrations = {k: v.format(name="handle_new_user", definer=definer, table=table) for k, v in SIGN_UP.items()}
    result = _run(pytester, migrations, SIGN_UP_TESTS.replace("{body}", body), seed=SEED)
    result.assert_outcomes(passed=2)


EXPOSE = {
    "20240101000000_init.sql": """
        create table public.open_notes (id int primary key);
        create table public.granted_notes (id int primary key);
        grant select on public.granted_notes to authenticated;
        alter table public.open_notes enable row level security;
        alter table public.granted_notes enable row level security;
        create policy r on public.open_notes for select using (true);
        create policy r on public.granted_notes for select using (true);
    """,
}
EXPOSE_TESTS = """
    import psycopg
    import pytest

    def test_grants(rls):
        with rls.as_user("11111111-1111-1111-1111-111111111111"):
            assert rls.scalar("select count(*) from granted_notes") == 0
            if {expose}:
                assert rls.scalar("select count(*) from open_notes") == 0
            else:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    rls.execute("select count(*) from open_notes")
"""


@pytest.mark.parametrize(
    ("config", "expose"),
    [("[api]\nauto_expose_new_tables = false\n", False), ("[api]\nauto_expose_new_tables = true\n", True), ("", True)],
)
def test_new_tables_get_the_api_grants_as_config_toml_says(pytester, config, expose) -> None:
    result = _run(pytester, EXPOSE, EXPOSE_TESTS.replace("{expose}", str(expose)), config=config or "project_id = 'x'\n")
    result.assert_outcomes(passed=1)


def test_a_seed_repeating_a_token_fails_as_on_db_reset(pytester) -> None:
    seed = """
        insert into auth.users (id, email, confirmation_token) values
          ('22222222-2222-2222-2222-222222222222', 'a@example.test', ''),
          ('33333333-3333-3333-3333-333333333333', 'b@example.test', '');
        insert into auth.users (id, email, confirmation_token) values
          ('44444444-4444-4444-4444-444444444444', 'c@example.test', 'tok'),
          ('55555555-5555-5555-5555-555555555555', 'd@example.test', 'tok');
    """
    result = _run(pytester, {"20240101000000_init.sql": "create table t (id int);\n"}, "def test_x(rls):\n    pass\n", seed)
    out = result.stdout.str()
    assert result.ret != 0 and "seed.sql:4" in out and "confirmation_token_idx" in out and "23505" in out


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("create extension if not exists pg_cron with schema pg_catalog", True),
        ('CREATE EXTENSION "uuid-ossp"', True),
        ("create extension pageinspect", False),
        ('create policy "x y" on storage.objects for select using (true)', True),
        ('create policy p on "storage"."objects" using (true)', True),
        ("create policy p on public.t using (true)", False),
        ("drop trigger if exists t on auth.users", True),
        ("drop trigger if exists t on public.users", False),
        ("alter table storage.objects enable row level security", False),
        ("create publication p for table t", True),
        ("-- a comment\ncreate extension pgtap", True),
        ("create index on auth.users (email)", False),
        ("SET session_replication_role = replica", True),
        ("set work_mem = '1GB'", False),
        ("alter role authenticator set pgrst.db_pre_request = 'public.check'", True),
        ("alter role anon set statement_timeout = '5s'", True),
        ("alter role app_user set statement_timeout = '5s'", False),
    ],
)
def test_what_supautils_runs_as_the_superuser(statement, expected) -> None:
    assert elevated(statement) is expected


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("alter role supabase_auth_admin set search_path = public", None),
        ("alter role anon nologin", None),
        ("drop role if exists authenticated", None),
        ("grant pg_read_server_files to app_user", "role memberships are reserved"),
        ("alter role anon set statement_timeout = '5s'", "allowed"),
        ("grant app_group to authenticated", "allowed"),
    ],
)
def test_the_platform_s_reserved_roles_are_refused_to_postgres(rls, statement, message) -> None:
    rls.execute("create role app_user nologin; create role app_group nologin")
    if message == "allowed":
        rls.execute(statement)
        return
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=message or "is a reserved role, only superusers"):
        rls.execute(statement)
    assert rls.scalar("select count(*) from pg_roles where rolname = 'authenticated'") == 1


def test_a_migration_altering_a_platform_role_fails_as_on_db_reset(pytester) -> None:
    migration = "create table t (id int);\ngrant select on t to authenticated;\nalter role authenticated bypassrls;\n"
    result = _run(pytester, {"20240101000000_init.sql": migration}, "def test_x(rls):\n    pass\n")
    out = result.stdout.str()
    assert result.ret != 0 and "20240101000000_init.sql:3" in out
    assert '"authenticated" is a reserved role, only superusers can modify it' in out and "42501" in out


def test_several_statements_in_one_owner_string_are_judged_one_by_one(rls) -> None:
    """supautils treats each statement apart: the allowed one runs as the superuser, the
    others as postgres (refused where postgres may not)."""
    rls.execute("create table public.multi (id int); create policy m on auth.users for select using (true)")
    assert rls.scalar("select tableowner from pg_tables where tablename = 'multi'") == "postgres"
    assert rls.scalar("select count(*) from pg_policies where policyname = 'm'") == 1
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner of table users"):
        rls.execute("set session_replication_role = replica; alter table auth.users add column x int")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="role memberships are reserved"):
        rls.execute("create role multi_user nologin; grant authenticator to multi_user")
    assert rls.scalar("select count(*) from pg_roles where rolname = 'multi_user'") == 0  # the string is undone


def test_explain_on_the_owner_side_runs_as_postgres(rls) -> None:
    """rls.explain without an identity acts as rls.execute does: postgres, not the superuser."""
    rls.execute("set local role none; create table public.superusers_only (id int);"
                " revoke all on public.superusers_only from anon, authenticated, service_role; set local role postgres")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # (postgres may read it: pg_read_all_data)
        rls.execute("insert into public.superusers_only values (1)")
    with pytest.raises(Exception, match="permission denied for table superusers_only"):
        rls.explain("insert into public.superusers_only values (1)", count_calls=False)
    assert rls.explain("select 1", count_calls=False).identity == "the table owner (postgres)"
