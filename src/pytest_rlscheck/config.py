"""Settings: command-line options over ``[tool.rlscheck]`` in pyproject.toml over defaults."""

from __future__ import annotations

import difflib
import glob
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["Settings", "load_settings", "resolve_sql_files"]

#: Keys of ``[tool.rlscheck]``; anything else is reported as a probable typo.
KNOWN_KEYS = frozenset(
    {
        "migrations",
        "seed",
        "supabase",
        "pg_bin",
        # used by the verification vocabulary and the sweep
        "schemas",
        "tenant_column",
        "tables",
        "principals",
        "ignore",
        "fail_on",
    }
)

DEFAULT_MIGRATIONS = "supabase/migrations"
DEFAULT_SEED = "supabase/seed.sql"


@dataclass(frozen=True)
class Settings:
    """Everything the plugin needs to know to build the database, after validation."""

    migrations: tuple[Path, ...] = ()
    seed: tuple[Path, ...] = ()
    supabase: bool | None = None  # None: install the shim when the migrations need it
    pg_bin: str | None = None
    dsn: str | None = None
    rootdir: Path = field(default_factory=Path.cwd)
    config_file: Path | None = None
    table: Mapping[str, Any] = field(default_factory=dict)  # the raw [tool.rlscheck] table

    def describe_sources(self) -> str:
        if not self.migrations:
            return "no migrations"
        return f"{len(self.migrations)} migration file(s), {len(self.seed)} seed file(s)"


def load_settings(
    *,
    rootdir: Path,
    invocation_dir: Path,
    pyproject: Path | None,
    cli_migrations: Sequence[str] = (),
    cli_seed: Sequence[str] = (),
    cli_supabase: bool | None = None,
    cli_pg_bin: str | None = None,
    cli_dsn: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Settings:
    """Merge the command line, the environment and ``[tool.rlscheck]`` into :class:`Settings`."""
    table: dict[str, Any] = {}
    base = rootdir
    if pyproject is not None and pyproject.is_file():
        table = _read_table(pyproject)
        base = pyproject.parent
    _check_keys(table, pyproject)

    if cli_migrations:
        migrations = resolve_sql_files(cli_migrations, invocation_dir, "--rlscheck-migrations", sort=True)
    elif "migrations" in table:
        specs = _string_list(table, "migrations", pyproject)
        migrations = resolve_sql_files(specs, base, f"migrations in {_name(pyproject)}", sort=True)
    elif (rootdir / DEFAULT_MIGRATIONS).is_dir():
        migrations = resolve_sql_files([DEFAULT_MIGRATIONS], rootdir, "supabase/migrations", sort=True)
    else:
        migrations = ()

    if cli_seed:
        seed = resolve_sql_files(cli_seed, invocation_dir, "--rlscheck-seed", sort=False)
    elif "seed" in table:
        seed = resolve_sql_files(_string_list(table, "seed", pyproject), base, f"seed in {_name(pyproject)}", sort=False)
    elif (rootdir / DEFAULT_SEED).is_file():
        seed = (rootdir / DEFAULT_SEED,)
    else:
        seed = ()

    supabase = cli_supabase
    if supabase is None and "supabase" in table:
        value = table["supabase"]
        if value == "auto":
            supabase = None
        elif isinstance(value, bool):
            supabase = value
        else:
            raise ConfigError(
                f"{_name(pyproject)}: [tool.rlscheck] supabase must be true, false or \"auto\", got {value!r}"
            )

    _check_sweep_keys(table, pyproject)
    pg_bin = cli_pg_bin or environ.get("RLSCHECK_PG_BIN") or _optional_str(table, "pg_bin", pyproject)
    dsn = cli_dsn or environ.get("RLSCHECK_DSN") or None
    return Settings(
        migrations=migrations,
        seed=seed,
        supabase=supabase,
        pg_bin=pg_bin,
        dsn=dsn,
        rootdir=rootdir,
        config_file=pyproject if table else None,
        table=table,
    )


def resolve_sql_files(specs: Sequence[str], base: Path, origin: str, *, sort: bool) -> tuple[Path, ...]:
    """Expand directories (their ``*.sql``), files and globs; fail on what matches nothing."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if not path.is_absolute():
            path = base / path
        if glob.has_magic(str(path)):
            matches = [Path(p) for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).is_file()]
            if not matches:
                raise ConfigError(f"{origin}: the pattern {spec!r} matches no file (looked in {base})")
            found.extend(matches)
        elif path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix == ".sql" and p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigError(f"{origin}: {spec!r} is not a file, a directory or a pattern that exists ({path})")
    # A file reached twice is applied once, under the name of a symlink to it if one was
    # listed (its own name orders it, as in the Supabase CLI), else as first listed.
    by_target: dict[Path, Path] = {}
    for p in found:
        path = Path(os.path.abspath(p))
        target = path.resolve()
        if target not in by_target or (path != target and by_target[target] == target):
            by_target[target] = path
    unique = list(by_target.values())
    if sort:
        unique.sort(key=lambda p: (p.name, str(p)))
    return tuple(unique)


def _read_table(pyproject: Path) -> dict[str, Any]:
    try:
        with pyproject.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: not valid TOML: {exc}") from None
    tool = data.get("tool", {})
    table = tool.get("rlscheck", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.rlscheck] must be a table, got {type(table).__name__}")
    return table


def _check_keys(table: Mapping[str, Any], pyproject: Path | None) -> None:
    for key in table:
        if key not in KNOWN_KEYS:
            close = difflib.get_close_matches(key, sorted(KNOWN_KEYS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known keys: {', '.join(sorted(KNOWN_KEYS))}."
            raise ConfigError(f"{_name(pyproject)}: unknown key {key!r} in [tool.rlscheck].{hint}")


_TABLE_KEYS = {"tenant_column", "tenant_sql", "commands"}
_PRINCIPAL_KEYS = {"sub", "tenant", "role", "claims", "email"}


def _check_sweep_keys(table: Mapping[str, Any], pyproject: Path | None) -> None:
    """The shapes of schemas, tenant_column, tables, principals, ignore and fail_on."""
    where = _name(pyproject)
    if "schemas" in table:
        _string_list(table, "schemas", pyproject)
    if "tenant_column" in table:
        _optional_str(table, "tenant_column", pyproject)
    if "fail_on" in table and table["fail_on"] not in ("error", "warn", "info"):
        raise ConfigError(f"{where}: [tool.rlscheck] fail_on must be \"error\", \"warn\" or \"info\", got {table['fail_on']!r}")
    for name, spec in _tables(table, "tables", where).items():
        unknown = set(spec) - _TABLE_KEYS
        if unknown:
            raise ConfigError(f"{where}: [tool.rlscheck.tables.\"{name}\"] has unknown keys {sorted(unknown)}; "
                              f"allowed: {sorted(_TABLE_KEYS)}")
        if "." not in name:
            raise ConfigError(f"{where}: [tool.rlscheck.tables.\"{name}\"]: name tables schema-qualified, e.g. \"public.{name}\"")
        commands = spec.get("commands")
        if commands is not None and (
            not isinstance(commands, list) or not set(map(str.upper, commands)) <= {"SELECT", "INSERT", "UPDATE", "DELETE"}
        ):
            raise ConfigError(f"{where}: [tool.rlscheck.tables.\"{name}\"] commands must list SELECT, INSERT, UPDATE, DELETE")
    for name, spec in _tables(table, "principals", where).items():
        unknown = set(spec) - _PRINCIPAL_KEYS
        if unknown or not isinstance(spec.get("sub"), str):
            raise ConfigError(f"{where}: [tool.rlscheck.principals.{name}] needs sub = \"<user uuid>\" "
                              f"(optional: tenant, role, claims, email){'; unknown keys ' + str(sorted(unknown)) if unknown else ''}")
    for key, reason in _tables(table, "ignore", where, values=False).items():
        if ":" not in key:
            raise ConfigError(f"{where}: [tool.rlscheck.ignore] key {key!r} must be \"rule-id:schema.object\"")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{where}: [tool.rlscheck.ignore] {key!r} needs a reason (a non-empty string)")


def _tables(table: Mapping[str, Any], key: str, where: str, *, values: bool = True) -> Mapping[str, Any]:
    value = table.get(key) or {}
    if not isinstance(value, dict) or (values and not all(isinstance(v, dict) for v in value.values())):
        raise ConfigError(f"{where}: [tool.rlscheck.{key}] must be a table of tables")
    return value


def _string_list(table: Mapping[str, Any], key: str, pyproject: Path | None) -> list[str]:
    value = table[key]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(
        f"{_name(pyproject)}: [tool.rlscheck] {key} must be a path or a list of paths, got {value!r}"
    )


def _optional_str(table: Mapping[str, Any], key: str, pyproject: Path | None) -> str | None:
    value = table.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"{_name(pyproject)}: [tool.rlscheck] {key} must be a string, got {value!r}")


def _name(pyproject: Path | None) -> str:
    return str(pyproject) if pyproject else "pyproject.toml"
