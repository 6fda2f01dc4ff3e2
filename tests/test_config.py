"""Settings: where migrations come from, in which order, and what a bad config says."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pytest_rlscheck.config import PrincipalConfig, SweepConfig, TableConfig, load_settings
from pytest_rlscheck.errors import ConfigError


def _touch(path: Path, text: str = "select 1;") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _load(root: Path, pyproject: str | None = None, **kwargs):
    file = None
    if pyproject is not None:
        file = root / "pyproject.toml"
        file.write_text(pyproject)
    return load_settings(rootdir=root, invocation_dir=root, pyproject=file, environ=kwargs.pop("environ", {}), **kwargs)


def test_files_from_several_sources_run_sorted_by_name(tmp_path: Path) -> None:
    _touch(tmp_path / "db/b/20240301_third.sql")
    _touch(tmp_path / "db/a/20240101_first.sql")
    _touch(tmp_path / "db/a/20240201_second.sql")
    _touch(tmp_path / "db/a/notes.txt")
    settings = _load(tmp_path, '[tool.rlscheck]\nmigrations = ["db/b", "db/a/*.sql"]\n')
    assert [p.name for p in settings.migrations] == ["20240101_first.sql", "20240201_second.sql", "20240301_third.sql"]


def test_a_symlinked_migration_is_ordered_by_its_own_name(tmp_path: Path) -> None:
    _touch(tmp_path / "shared/schema.sql")
    _touch(tmp_path / "migrations/001_changes.sql")
    (tmp_path / "migrations/000_schema.sql").symlink_to(tmp_path / "shared/schema.sql")
    # the link's name orders it, and the file it points to (listed again) is applied once
    for listed in ('["migrations", "shared/schema.sql"]', '["shared/*.sql", "migrations"]'):
        settings = _load(tmp_path, f"[tool.rlscheck]\nmigrations = {listed}\n")
        assert [p.name for p in settings.migrations] == ["000_schema.sql", "001_changes.sql"]


def test_command_line_overrides_the_config_and_seeds_keep_their_order(tmp_path: Path) -> None:
    _touch(tmp_path / "cli/001_m.sql")
    _touch(tmp_path / "cfg/001_m.sql")
    _touch(tmp_path / "z_seed.sql")
    _touch(tmp_path / "a_seed.sql")
    settings = _load(
        tmp_path,
        '[tool.rlscheck]\nmigrations = "cfg"\n',
        cli_migrations=["cli"],
        cli_seed=["z_seed.sql", "a_seed.sql"],
    )
    assert [p.parent.name for p in settings.migrations] == ["cli"]
    assert [p.name for p in settings.seed] == ["z_seed.sql", "a_seed.sql"]


def test_supabase_layout_is_the_default(tmp_path: Path) -> None:
    _touch(tmp_path / "supabase/migrations/20240101_init.sql")
    _touch(tmp_path / "supabase/seed.sql")
    settings = _load(tmp_path)
    assert [p.name for p in settings.migrations] == ["20240101_init.sql"]
    assert [p.name for p in settings.seed] == ["seed.sql"]
    assert settings.supabase is None


def test_environment_supplies_server_settings(tmp_path: Path) -> None:
    settings = _load(tmp_path, environ={"RLSCHECK_PG_BIN": "/opt/pg/bin", "RLSCHECK_DSN": "postgresql:///x"})
    assert (settings.pg_bin, settings.dsn) == ("/opt/pg/bin", "postgresql:///x")
    assert _load(tmp_path, cli_pg_bin="/cli/bin", environ={"RLSCHECK_PG_BIN": "/env"}).pg_bin == "/cli/bin"


@pytest.mark.parametrize(
    "toml, message",
    [
        ('[tool.rlscheck]\nmigration = "db"\n', "unknown key 'migration' in [tool.rlscheck]. Did you mean 'migrations'?"),
        ("[tool.rlscheck]\nmigrations = 3\n", "migrations must be a path or a list of paths, got 3"),
        ('[tool.rlscheck]\nsupabase = "yes"\n', "supabase must be true, false or \"auto\", got 'yes'"),
        ('[tool.rlscheck]\nmigrations = ["nowhere"]\n', "'nowhere' is not a file, a directory or a pattern that exists"),
        ('[tool.rlscheck]\nmigrations = ["*.nothing"]\n', "the pattern '*.nothing' matches no file"),
        ("[tool.rlscheck\n", "not valid TOML"),
    ],
)
def test_malformed_config_says_what_is_wrong(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, toml)
    assert message in str(info.value)
    assert str(tmp_path / "pyproject.toml") in str(info.value)


ALICE = '[tool.rlscheck.principals.alice]\nsub = "11111111-1111-1111-1111-111111111111"\n'


@pytest.mark.parametrize(
    "toml, message",
    [
        # [tool.rlscheck.tables."schema.table"]
        ('[tool.rlscheck.tables."public.t"]\ntenant_column = 3\n',
         '[tool.rlscheck.tables."public.t"] tenant_column must be a column name, got 3'),
        ('[tool.rlscheck.tables."public.t"]\ntenant_sql = ["org_id"]\n',
         "[tool.rlscheck.tables.\"public.t\"] tenant_sql must be an SQL expression over the row, e.g. "),
        ('[tool.rlscheck.tables."public.t"]\ntenant_column = "org_id"\ntenant_sql = "(org_id)"\n',
         '[tool.rlscheck.tables."public.t"]: give tenant_column or tenant_sql, not both'),
        ('[tool.rlscheck.tables."public.t"]\ncommands = [1, "SELECT"]\n',
         '[tool.rlscheck.tables."public.t"] commands must be a list of SELECT, INSERT, UPDATE, DELETE '
         "(the commands the API should have), got [1, 'SELECT']"),
        ('[tool.rlscheck.tables."public.t"]\ncommands = "SELECT"\n',
         "commands must be a list of SELECT, INSERT, UPDATE, DELETE (the commands the API should have), got 'SELECT'"),
        ('[tool.rlscheck.tables."public.t"]\ncommands = ["READ"]\n', "got ['READ']"),
        ('[tool.rlscheck.tables]\n"public.t" = "org_id"\n',
         "[tool.rlscheck.tables.\"public.t\"] must be a table of settings, got 'org_id'"),
        # [tool.rlscheck.principals.NAME]
        ('[tool.rlscheck.principals.alice]\nsub = "alice"\n',
         "[tool.rlscheck.principals.alice] sub must be the user's id as a UUID string (auth.uid() casts it to "
         "uuid), e.g. sub = \"11111111-1111-1111-1111-111111111111\", got 'alice'"),
        ("[tool.rlscheck.principals.alice]\nsub = 1\n", "[tool.rlscheck.principals.alice] sub must be the user's id as a UUID"),
        ('[tool.rlscheck.principals.alice]\ntenant = "x"\n', '[tool.rlscheck.principals.alice] needs sub = "<the user'),
        (ALICE + "tenant = true\n",
         "[tool.rlscheck.principals.alice] tenant must be the id of the user's tenant, a string (a uuid, a slug) "
         "or an integer (a bigint key), got True"),
        (ALICE + "tenant = 1.5\n", "tenant must be the id of the user's tenant, a string (a uuid, a slug) or an integer"),
        (ALICE + 'tenant = ""\n', "tenant must be the id of the user's tenant"),
        (ALICE + "role = 7\n", "[tool.rlscheck.principals.alice] role must be a database role, e.g. \"authenticated\", got 7"),
        (ALICE + "email = false\n", "[tool.rlscheck.principals.alice] email must be a string, got False"),
        (ALICE + 'claims = "admin"\n', "[tool.rlscheck.principals.alice] claims must be a table of JWT claims"),
        (ALICE + 'tenants = "x"\n', "[tool.rlscheck.principals.alice] has unknown keys ['tenants']"),
        (ALICE + '[tool.rlscheck.principals.bob]\nsub = "11111111-1111-1111-1111-111111111111"\n',
         "[tool.rlscheck.principals.alice] and [tool.rlscheck.principals.bob] have the same sub "
         "'11111111-1111-1111-1111-111111111111': each principal must be a different user"),
        # the same user written another way PostgreSQL reads (upper case, no hyphens)
        (ALICE + '[tool.rlscheck.principals.bob]\nsub = "11111111111111111111111111111111"\n', "have the same sub"),
        ('[tool.rlscheck]\nprincipals = ["alice"]\n', "[tool.rlscheck] principals must be a table ([tool.rlscheck.principals])"),
        # top level
        ('[tool.rlscheck]\nschemas = "public"\n',
         "[tool.rlscheck] schemas must be a list of schema names, e.g. [\"public\"], got 'public'"),
        ("[tool.rlscheck]\nschemas = [1]\n", "schemas must be a list of schema names"),
        ("[tool.rlscheck]\nschemas = []\n", "schemas must be a list of schema names"),
        ("[tool.rlscheck]\ntenant_column = 3\n", "[tool.rlscheck] tenant_column must be a column name, got 3"),
        ('[tool.rlscheck]\ntenant_column = ""\n', "[tool.rlscheck] tenant_column must be a column name, got ''"),
    ],
)
def test_sweep_settings_of_the_wrong_type_say_what_is_expected(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, toml)
    assert message in str(info.value)
    assert str(tmp_path / "pyproject.toml") in str(info.value)


def test_principals_take_a_uuid_sub_and_a_string_or_integer_tenant(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        ALICE + 'tenant = 5\nrole = "authenticated"\nemail = "a@x.io"\nclaims = { app_metadata = { plan = "pro" } }\n'
        '[tool.rlscheck.principals.bob]\nsub = "{22222222-2222-2222-2222-22222222222A}"\ntenant = "globex"\n'
        '[tool.rlscheck.tables."public.t"]\ntenant_sql = "(select 1)"\ncommands = ["select", "INSERT"]\n',
    )
    principals = settings.sweep.principals
    assert (principals["alice"].tenant, principals["bob"].tenant) == (5, "globex")
    # the sub as PostgreSQL prints a uuid: the checks compare it with user_id::text
    assert principals["bob"].sub == "22222222-2222-2222-2222-22222222222a"
    assert principals["alice"] == PrincipalConfig(
        "11111111-1111-1111-1111-111111111111", 5, "authenticated", {"app_metadata": {"plan": "pro"}}, "a@x.io"
    )
    assert principals["bob"].role is None and principals["bob"].claims is None  # not configured: the callers' defaults
    assert settings.sweep.table("public.t") == TableConfig(None, "(select 1)", ("SELECT", "INSERT"))
    assert settings.sweep.table("public.other") == TableConfig()
    with pytest.raises(ConfigError, match="tenant must be the id of the user's tenant"):
        _load(tmp_path, ALICE + "tenant = false\n")  # a TOML boolean is no tenant id (nor 0 and 1)


def test_sweep_settings_are_read_once_into_values_that_cannot_change(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        '[tool.rlscheck]\nschemas = ["public", "api"]\ntenant_column = "org_id"\nfail_on = "error"\n'
        '[tool.rlscheck.ignore]\n"rls-disabled:public.lookup" = "read-only reference data"\n'
        + ALICE + 'claims = { app_metadata = { roles = ["admin"] } }\n',
    )
    sweep = settings.sweep
    assert sweep == SweepConfig(
        schemas=("public", "api"),
        tenant_column="org_id",
        fail_on="error",
        ignore={"rls-disabled:public.lookup": "read-only reference data"},
        principals={"alice": PrincipalConfig("11111111-1111-1111-1111-111111111111", claims={"app_metadata": {"roles": ("admin",)}})},
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        sweep.schemas = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        sweep.ignore["no-primary-key:public.t"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        sweep.principals["alice"].claims["app_metadata"]["plan"] = "pro"  # type: ignore[index]
    # a plain copy for the JWT (json.dumps takes no read-only mapping); changing it changes nothing
    claims = sweep.principals["alice"].claims_dict()
    assert claims == {"app_metadata": {"roles": ["admin"]}}
    assert claims is not None
    claims["app_metadata"]["roles"].append("owner")
    assert sweep.principals["alice"].claims_dict() == {"app_metadata": {"roles": ["admin"]}}
    # without [tool.rlscheck]: nothing configured, the callers' defaults apply
    (tmp_path / "bare").mkdir()
    assert _load(tmp_path / "bare").sweep == SweepConfig()


def test_an_empty_migrations_directory_is_noted_with_its_origin(tmp_path: Path) -> None:
    (tmp_path / "supabase/migrations").mkdir(parents=True)
    (tmp_path / "supabase/migrations/README.md").write_text("migrations go here")
    settings = _load(tmp_path)
    assert settings.migrations == ()
    assert settings.empty_migration_dirs == (tmp_path / "supabase/migrations",)
    assert settings.migration_origin == "the default supabase/migrations"
    _touch(tmp_path / "db/001_t.sql")
    (tmp_path / "empty").mkdir()
    settings = _load(tmp_path, '[tool.rlscheck]\nmigrations = ["db", "empty"]\n')
    assert [p.name for p in settings.migrations] == ["001_t.sql"]
    assert settings.empty_migration_dirs == (tmp_path / "empty",)
    assert settings.migration_origin == f"migrations = ['db', 'empty'] in {tmp_path / 'pyproject.toml'}"
    settings = _load(tmp_path / "db", cli_migrations=["."])
    assert settings.empty_migration_dirs == () and settings.migration_origin == "--rlscheck-migrations=."
    assert _load(tmp_path / "empty").migration_origin == (
        f"the default supabase/migrations, which does not exist in {tmp_path / 'empty'}"
    )


def test_migration_directories_are_read_as_the_supabase_cli_reads_them(tmp_path: Path) -> None:
    _touch(tmp_path / "supabase/migrations/20200101000000_init.sql")
    _touch(tmp_path / "supabase/migrations/20240101000000_schema.sql")
    _touch(tmp_path / "supabase/migrations/notes.sql")
    settings = _load(tmp_path)
    assert [p.name for p in settings.migrations] == ["20240101000000_schema.sql"]
    assert [(p.name, reason.split(",")[0]) for p, reason in settings.skipped_migrations] == [
        ("20200101000000_init.sql", "an initial schema of a CLI before December 2021"),
        ("notes.sql", 'the file name must match "<timestamp>_name.sql"'),
    ]
    # the CLI skips that initial schema only as the directory's first entry, of any kind
    _touch(tmp_path / "supabase/migrations/.gitkeep", "")
    settings = _load(tmp_path)
    assert [p.name for p in settings.migrations] == ["20200101000000_init.sql", "20240101000000_schema.sql"]
    # a file named on its own is the user's choice: applied whatever its name
    settings = _load(tmp_path, cli_migrations=[str(tmp_path / "supabase/migrations/notes.sql")])
    assert [p.name for p in settings.migrations] == ["notes.sql"] and settings.skipped_migrations == ()


def test_one_version_twice_across_sources_is_refused(tmp_path: Path) -> None:
    _touch(tmp_path / "a/20240101000000_one.sql")
    _touch(tmp_path / "b/20240101000000_other.sql")
    with pytest.raises(ConfigError, match="two migrations have the version 20240101000000: .*a/20240101000000_one.sql and "
                                          ".*b/20240101000000_other.sql"):
        _load(tmp_path, '[tool.rlscheck]\nmigrations = ["a", "b"]\n')


def test_server_settings_come_from_the_config_and_the_command_line(tmp_path: Path) -> None:
    config = '[tool.rlscheck]\nserver_settings = {work_mem = "8MB", "app.mode" = "strict", jit = false, max_connections = 50}\n'
    settings = _load(tmp_path, config, cli_pg_settings=["work_mem=16MB", "app.extra = a=b"])
    assert dict(settings.server_settings) == {
        "work_mem": "16MB", "app.mode": "strict", "jit": "off", "max_connections": "50", "app.extra": " a=b",
    }
    for bad, message in [
        (["work_mem"], "write NAME=VALUE"),
        (["bad name=1"], "write NAME=VALUE"),
    ]:
        with pytest.raises(ConfigError, match=message):
            _load(tmp_path, cli_pg_settings=bad)
    for table, message in [
        ('server_settings = "work_mem=8MB"', "must be a table of settings"),
        ("server_settings = {work_mem = [1]}", "work_mem must be a string, a number or a boolean"),
        ('server_settings = {"x y" = "1"}', "'x y' is not a PostgreSQL setting name"),
    ]:
        with pytest.raises(ConfigError, match=message):
            _load(tmp_path, f"[tool.rlscheck]\n{table}\n")
    with pytest.raises(ConfigError, match="apply to the throw-away server"):
        _load(tmp_path, cli_pg_settings=["work_mem=8MB"], cli_dsn="postgresql:///x")


def test_the_supabase_cli_config_chooses_the_seeds_and_the_major_version(tmp_path: Path) -> None:
    _touch(tmp_path / "supabase/migrations/20240101000000_a.sql")
    _touch(tmp_path / "supabase/seeds/02_b.sql")
    _touch(tmp_path / "supabase/seeds/01_a.sql")
    _touch(tmp_path / "supabase/seed.sql")
    cli = tmp_path / "supabase/config.toml"
    cli.write_text('[db]\nmajor_version = 15\n[db.seed]\nsql_paths = ["./seeds/*.sql", "./seed.sql", "./none/*.sql"]\n')
    settings = _load(tmp_path)
    assert [p.relative_to(tmp_path / "supabase").as_posix() for p in settings.seed] == [
        "seeds/01_a.sql", "seeds/02_b.sql", "seed.sql"]
    assert settings.pg_major == 15
    assert settings.notes == (f"[db.seed] in {cli}: sql_paths './none/*.sql' matches no file",)
    assert _load(tmp_path, cli_pg_bin="/opt/pg/bin").pg_major is None  # an explicit server wins
    # [tool.rlscheck] and the options still override
    assert [p.name for p in _load(tmp_path, '[tool.rlscheck]\nseed = ["supabase/seed.sql"]\n').seed] == ["seed.sql"]
    cli.write_text("[db.seed]\nenabled = false\n")
    settings = _load(tmp_path)
    assert settings.seed == () and "enabled = false" in settings.notes[0]
    for text, message in [
        ("[db.seed]\nenabled = 'no'\n", "enabled must be true or false"),
        ('[db.seed]\nsql_paths = "./seed.sql"\n', "sql_paths must be a list"),
        ("[db]\nmajor_version = '15'\n", "major_version must be a number"),
        ("[db\n", "not valid TOML"),
    ]:
        cli.write_text(text)
        with pytest.raises(ConfigError, match=message):
            _load(tmp_path)


def test_a_major_version_not_installed_falls_back_and_says_so() -> None:
    from pytest_rlscheck.binaries import find_pg_binaries

    installed = find_pg_binaries()
    assert find_pg_binaries(major=installed.major) == installed
    other = find_pg_binaries(major=99)
    assert other.major == installed.major
    assert "PostgreSQL 99 was asked for ([db] major_version)" in other.describe()
