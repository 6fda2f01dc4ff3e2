"""Settings: where migrations come from, in which order, and what a bad config says."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rlscheck.config import load_settings
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
    _touch(tmp_path / "cli/001.sql")
    _touch(tmp_path / "cfg/001.sql")
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
