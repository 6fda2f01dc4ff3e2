"""Settings: command-line options over ``[tool.rlscheck]`` in pyproject.toml over defaults."""

from __future__ import annotations

import dataclasses
import difflib
import glob
import os
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import ConfigError
from .platform_config import PlatformConfig, read_platform
from .template_cache import CACHE_OFF_ENV

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "PrincipalConfig",
    "Settings",
    "SourceRule",
    "SweepConfig",
    "TableConfig",
    "check_versions",
    "empty_directories",
    "load_settings",
    "resolve_sql_files",
]

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
        "server_settings",
        "stand_ins",
        "template_cache",
        "safeupdate",
        "snapshot",
    }
)

DEFAULT_MIGRATIONS = "supabase/migrations"
DEFAULT_SEED = "supabase/seed.sql"


def _frozen(value: Any) -> Any:
    """``value`` (as TOML reads it) that cannot change: tables as read-only mappings, arrays as tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    """A fresh plain copy of a :func:`_frozen` value (dicts and lists, for ``json.dumps``)."""
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value


def _no_entries() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class TableConfig:
    """``[tool.rlscheck.tables."schema.table"]``: where a row's tenant comes from, and the
    commands the API should have on the table."""

    tenant_column: str | None = None
    tenant_sql: str | None = None
    #: The commands, upper case, as listed; None when not configured.
    commands: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PrincipalConfig:
    """``[tool.rlscheck.principals.NAME]``: a user of the app for the isolation checks."""

    #: The user's auth.users id, as PostgreSQL prints a uuid (lower case, hyphens): the checks
    #: compare it with ``user_id::text``.
    sub: str
    tenant: str | int | None = None  # as written: a string (uuid, slug) or an integer (bigint key)
    role: str | None = None  # None: not configured (the caller's default applies)
    #: JWT claims, read-only (nested tables too); :meth:`claims_dict` gives a plain copy.
    claims: Mapping[str, Any] | None = None
    email: str | None = None

    def claims_dict(self) -> dict[str, Any] | None:
        """The claims as plain dicts and lists (what ``json.dumps`` takes), a fresh copy."""
        return None if self.claims is None else _thawed(self.claims)


@dataclass(frozen=True)
class SweepConfig:
    """What ``[tool.rlscheck]`` says about the schema and its tenants, validated once."""

    schemas: tuple[str, ...] = ()  # empty: not configured (the sweep's default applies)
    tenant_column: str | None = None
    fail_on: str | None = None  # "error", "warn" or "info"; None: not configured
    #: ``"rule-id:schema.object"`` -> the reason it is ignored, in the order written.
    ignore: Mapping[str, str] = field(default_factory=_no_entries)
    #: ``"schema.table"`` -> its settings.
    tables: Mapping[str, TableConfig] = field(default_factory=_no_entries)
    #: name -> principal, in the order written.
    principals: Mapping[str, PrincipalConfig] = field(default_factory=_no_entries)
    #: Whether the API roles load pg-safeupdate (Supabase does): UPDATE and DELETE without a
    #: WHERE are refused through the API, so a leak only they show is latent (a warning).
    safeupdate: bool = True
    #: What supabase/config.toml says about the Data API and Auth (the CLI's defaults without one).
    platform: PlatformConfig = field(default_factory=PlatformConfig)

    def table(self, qualified: str) -> TableConfig:
        """The settings of ``schema.table`` (all unset when it has no entry)."""
        return self.tables.get(qualified) or TableConfig()


@dataclass(frozen=True)
class SourceRule:
    """How a set of source files was found, so that the same rule can find them again in
    another copy of the project (its files at a git revision, :mod:`.compare`).

    ``kind`` is ``"listed"``: ``specs`` (directories, files, globs as written), relative to
    ``base``, each of which must match (the command line, ``[tool.rlscheck]``);
    ``"default"``: the default path ``specs[0]`` under ``base``, when it exists; or
    ``"cli"``: supabase/config.toml's ``[db.seed] sql_paths`` patterns, relative to ``base``
    (the supabase directory), each pattern's matches sorted (no ``specs``: seeding is off)."""

    kind: str
    specs: tuple[str, ...] = ()
    base: Path | None = None


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
    #: ``[tool.rlscheck]``'s schemas, tenants, principals, ignores and fail_on, validated.
    sweep: SweepConfig = field(default_factory=SweepConfig)
    #: Where the migrations were looked for, in words ("--rlscheck-migrations=db", ...).
    migration_origin: str = f"the default {DEFAULT_MIGRATIONS}"
    #: Directories among the migration sources that hold no ``.sql`` file.
    empty_migration_dirs: tuple[Path, ...] = ()
    #: Files in the migration directories that the Supabase CLI skips, and why.
    skipped_migrations: tuple[tuple[Path, str], ...] = ()
    #: PostgreSQL settings for the throw-away server (name, value), the command line's last.
    server_settings: tuple[tuple[str, str], ...] = ()
    #: The server's major version supabase/config.toml asks for ([db] major_version).
    pg_major: int | None = None
    #: Things worth saying in the report header (seed patterns that match nothing, ...).
    notes: tuple[str, ...] = ()
    #: Stand-ins for extensions no server here has (``stand_ins = false`` turns them off).
    stand_ins: bool = True
    #: Reuse a migrated template between runs (off: --rlscheck-no-cache,
    #: RLSCHECK_TEMPLATE_CACHE=0 or ``template_cache = false``).
    template_cache: bool = True
    #: The access matrix's snapshot (``snapshot`` in ``[tool.rlscheck]``, ``--rlscheck-snapshot``):
    #: compared with on every sweep when the file exists; None: no snapshot.
    snapshot: Path | None = None
    #: How :attr:`migrations` and :attr:`seed` were found (None: not recorded, a Settings
    #: made by hand).
    migration_rule: SourceRule | None = None
    seed_rule: SourceRule | None = None

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
    cli_pg_settings: Sequence[str] = (),
    cli_no_cache: bool = False,
    cli_snapshot: str | None = None,
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
        specs, spec_base = list(cli_migrations), invocation_dir
        origin = "--rlscheck-migrations=" + " --rlscheck-migrations=".join(cli_migrations)
        migrations = resolve_sql_files(specs, spec_base, "--rlscheck-migrations", sort=True)
        migration_rule = SourceRule("listed", tuple(specs), spec_base)
    elif "migrations" in table:
        specs, spec_base = _string_list(table, "migrations", pyproject), base
        origin = f"migrations = {specs!r} in {_name(pyproject)}"
        migrations = resolve_sql_files(specs, spec_base, f"migrations in {_name(pyproject)}", sort=True)
        migration_rule = SourceRule("listed", tuple(specs), spec_base)
    elif (rootdir / DEFAULT_MIGRATIONS).is_dir():
        specs, spec_base = [DEFAULT_MIGRATIONS], rootdir
        origin = f"the default {DEFAULT_MIGRATIONS}"
        migrations = resolve_sql_files(specs, spec_base, "supabase/migrations", sort=True)
        migration_rule = SourceRule("default", (DEFAULT_MIGRATIONS,), rootdir)
    else:
        specs, spec_base = [], rootdir
        origin = f"the default {DEFAULT_MIGRATIONS}, which does not exist in {rootdir}"
        migrations = ()
        migration_rule = SourceRule("default", (DEFAULT_MIGRATIONS,), rootdir)

    cli_config = read_cli_config(rootdir / CLI_CONFIG)
    seed_notes: list[str] = []
    seed_rule = SourceRule("default", (DEFAULT_SEED,), rootdir)
    if cli_seed:
        seed = resolve_sql_files(cli_seed, invocation_dir, "--rlscheck-seed", sort=False)
        seed_rule = SourceRule("listed", tuple(cli_seed), invocation_dir)
    elif "seed" in table:
        seed_specs = _string_list(table, "seed", pyproject)
        seed = resolve_sql_files(seed_specs, base, f"seed in {_name(pyproject)}", sort=False)
        seed_rule = SourceRule("listed", tuple(seed_specs), base)
    elif cli_config is not None:
        seed, seed_notes = cli_config.seed_files()
        seed_rule = SourceRule("cli", cli_config.seed_paths if cli_config.seed_enabled else (), cli_config.path.parent)
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

    stand_ins = table.get("stand_ins", True)
    if not isinstance(stand_ins, bool):
        raise ConfigError(f"{_name(pyproject)}: [tool.rlscheck] stand_ins must be true or false, got {stand_ins!r}")
    template_cache = table.get("template_cache", True)
    if not isinstance(template_cache, bool):
        raise ConfigError(
            f"{_name(pyproject)}: [tool.rlscheck] template_cache must be true or false, got {template_cache!r}"
        )
    if cli_no_cache or environ.get(CACHE_OFF_ENV) == "0":
        template_cache = False
    check_versions(migrations)
    sweep = _sweep_config(table, pyproject)
    if cli_config is not None:
        sweep = dataclasses.replace(sweep, platform=cli_config.platform)
    pg_bin = cli_pg_bin or environ.get("RLSCHECK_PG_BIN") or _optional_str(table, "pg_bin", pyproject)
    dsn = cli_dsn or environ.get("RLSCHECK_DSN") or None
    server_settings = {**_configured_server_settings(table, pyproject), **_cli_server_settings(cli_pg_settings)}
    if server_settings and dsn:
        raise ConfigError(
            f"server settings ({', '.join(server_settings)}) apply to the throw-away server, and --rlscheck-dsn / "
            "RLSCHECK_DSN names an existing one: set them on that server, or drop the DSN."
        )
    configured_snapshot = _optional_str(table, "snapshot", pyproject)
    if cli_snapshot:
        snapshot: Path | None = Path(cli_snapshot).expanduser()
        snapshot = snapshot if snapshot.is_absolute() else invocation_dir / snapshot
    elif configured_snapshot:
        snapshot = Path(configured_snapshot).expanduser()
        snapshot = snapshot if snapshot.is_absolute() else base / snapshot
    else:
        snapshot = None
    if snapshot is not None and snapshot.is_dir():
        raise ConfigError(f"the access snapshot {snapshot} is a directory: name a file (supabase/rlscheck-access.json)")
    return Settings(
        migrations=migrations,
        seed=seed,
        supabase=supabase,
        pg_bin=pg_bin,
        dsn=dsn,
        rootdir=rootdir,
        config_file=pyproject if table else None,
        sweep=sweep,
        migration_origin=origin,
        empty_migration_dirs=empty_directories(specs, spec_base),
        skipped_migrations=skipped_migrations(specs, spec_base),
        server_settings=tuple(server_settings.items()),
        pg_major=cli_config.major_version if cli_config is not None and not pg_bin else None,
        notes=tuple(seed_notes),
        stand_ins=stand_ins,
        template_cache=template_cache,
        snapshot=snapshot,
        migration_rule=migration_rule,
        seed_rule=seed_rule,
    )


CLI_CONFIG = "supabase/config.toml"


@dataclass(frozen=True)
class CliConfig:
    """What the plugin reads of the Supabase CLI's ``supabase/config.toml``."""

    path: Path
    seed_enabled: bool = True
    seed_paths: tuple[str, ...] = ("./seed.sql",)  # the CLI's default, relative to supabase/
    major_version: int | None = None
    platform: PlatformConfig = field(default_factory=PlatformConfig)

    def seed_files(self) -> tuple[tuple[Path, ...], list[str]]:
        """The seed files, as ``supabase db reset`` finds them (each pattern's matches sorted,
        the patterns in their order, a file once), and notes on patterns that match nothing."""
        where = f"[db.seed] in {self.path}"
        if not self.seed_enabled:
            return (), [f"{where}: enabled = false, so no seed is applied"]
        base = self.path.parent
        found: list[Path] = []
        notes = []
        for pattern in self.seed_paths:
            full = str(base / pattern)
            matches = sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())
            if not matches:
                notes.append(f"{where}: sql_paths {pattern!r} matches no file")
            found += [m for m in matches if m not in found]
        return tuple(found), notes


def read_cli_config(path: Path) -> CliConfig | None:
    if not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    db = data.get("db") or {}
    seed = db.get("seed") or {} if isinstance(db, dict) else {}
    if not isinstance(db, dict) or not isinstance(seed, dict):
        raise ConfigError(f"{path}: [db] and [db.seed] must be tables")
    enabled = seed.get("enabled", True)
    paths = seed.get("sql_paths", ["./seed.sql"])
    major = db.get("major_version")
    if not isinstance(enabled, bool):
        raise ConfigError(f"{path}: [db.seed] enabled must be true or false, got {enabled!r}")
    if isinstance(paths, str) or not isinstance(paths, list) or not all(isinstance(x, str) for x in paths):
        raise ConfigError(f"{path}: [db.seed] sql_paths must be a list of paths or globs, got {paths!r}")
    if major is not None and (isinstance(major, bool) or not isinstance(major, int)):
        raise ConfigError(f"{path}: [db] major_version must be a number such as 15, got {major!r}")
    return CliConfig(path, enabled, tuple(paths), major, read_platform(data, str(path)))


#: A PostgreSQL setting's name: a parameter (``work_mem``) or a custom one (``app.tenant``).
SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _configured_server_settings(table: Mapping[str, Any], pyproject: Path | None) -> dict[str, str]:
    value = table.get("server_settings") or {}
    where = f"{_name(pyproject)}: [tool.rlscheck] server_settings"
    if not isinstance(value, dict):
        raise ConfigError(f'{where} must be a table of settings, e.g. server_settings = {{work_mem = "64MB"}}')
    out = {}
    for name, setting in value.items():
        if not SETTING_NAME.fullmatch(name):
            raise ConfigError(f"{where}: {name!r} is not a PostgreSQL setting name")
        if isinstance(setting, bool):
            setting = "on" if setting else "off"
        elif isinstance(setting, (int, float)):
            setting = str(setting)
        elif not isinstance(setting, str):
            raise ConfigError(f"{where}: {name} must be a string, a number or a boolean, got {setting!r}")
        out[name] = setting
    return out


def _cli_server_settings(values: Sequence[str]) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, setting = value.partition("=")
        name = name.strip()
        if not sep or not SETTING_NAME.fullmatch(name):
            raise ConfigError(f"--rlscheck-pg-setting {value!r}: write NAME=VALUE, e.g. --rlscheck-pg-setting=work_mem=64MB")
        out[name] = setting
    return out


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
            first = _first_entry(path)
            found.extend(f for f in _sql_files(path) if not sort or skip_reason(f, first) is None)
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


#: A migration's file name, as the Supabase CLI reads it: ``<version>_<name>.sql``.
MIGRATION_NAME = re.compile(r"^([0-9]+)_(.*)\.sql$")
#: Before December 2021 the CLI wrote the initial schema as ``<timestamp>_init.sql``; it skips
#: such a file when it comes first.
_LEGACY_INIT = re.compile(r"([0-9]{14})_init\.sql")
_LEGACY_INIT_BEFORE = 20211209000000


def skip_reason(path: Path, first: Path | None) -> str | None:
    """Why the Supabase CLI does not apply ``path``, a file of a migrations directory whose
    first entry by name (of any kind) is ``first``; None when it applies it."""
    legacy = _LEGACY_INIT.fullmatch(path.name)
    if legacy and first == path and int(legacy.group(1)) < _LEGACY_INIT_BEFORE:
        return "an initial schema of a CLI before December 2021, which the CLI skips: rename it to apply it"
    if not MIGRATION_NAME.match(path.name):
        return 'the file name must match "<timestamp>_name.sql"'
    return None


def skipped_migrations(specs: Sequence[str], base: Path) -> tuple[tuple[Path, str], ...]:
    """The ``.sql`` files of the migration directories among ``specs`` that the CLI skips."""
    skipped = []
    for directory in _spec_directories(specs, base):
        first = _first_entry(directory)
        skipped += [(f, reason) for f in _sql_files(directory) if (reason := skip_reason(f, first)) is not None]
    return tuple(skipped)


def _first_entry(directory: Path) -> Path | None:
    return min(directory.iterdir(), key=lambda p: p.name, default=None)


def check_versions(migrations: Sequence[Path]) -> None:
    """Two migrations with one version: the CLI's history table (its primary key is the
    version) refuses the second, so ``supabase db reset`` stops there."""
    seen: dict[str, Path] = {}
    for path in migrations:
        m = MIGRATION_NAME.match(path.name)
        if not m:
            continue
        first = seen.setdefault(m.group(1), path)
        if first is not path:
            raise ConfigError(
                f"two migrations have the version {m.group(1)}: {first} and {path}. The Supabase CLI records each "
                "version once (supabase_migrations.schema_migrations), so `supabase db reset` fails on the second; "
                "give one of them a new timestamp."
            )


def empty_directories(specs: Sequence[str], base: Path) -> tuple[Path, ...]:
    """The directories among ``specs`` that hold no ``*.sql`` file (subdirectories are not read)."""
    return tuple(d for d in _spec_directories(specs, base) if not _sql_files(d))


def _spec_directories(specs: Sequence[str], base: Path) -> list[Path]:
    """The specs that name a directory (not a glob, not a file), resolved against ``base``."""
    found = []
    for spec in specs:
        path = Path(spec).expanduser()
        path = path if path.is_absolute() else base / path
        if not glob.has_magic(str(path)) and path.is_dir():
            found.append(path)
    return found


def _sql_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix == ".sql" and p.is_file())


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
COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")
FAIL_ON = ("error", "warn", "info")
#: The forms of a uuid PostgreSQL reads (auth.uid() casts the sub to uuid).
_UUID = re.compile(r"(\{)?[0-9a-f]{8}(?:-?[0-9a-f]{4}){3}-?[0-9a-f]{12}(?(1)\})", re.IGNORECASE)
EXAMPLE_SUB = "11111111-1111-1111-1111-111111111111"


def _sweep_config(table: Mapping[str, Any], pyproject: Path | None) -> SweepConfig:
    """schemas, tenant_column, tables, principals, ignore and fail_on: their shapes checked,
    then read into a :class:`SweepConfig`."""
    where = _name(pyproject)
    schemas: tuple[str, ...] = ()
    tenant_column = None
    if "schemas" in table:
        schemas = tuple(_text_list(table["schemas"], f"{where}: [tool.rlscheck] schemas", "schema names", '["public"]'))
    if "tenant_column" in table:
        tenant_column = _text(table["tenant_column"], f"{where}: [tool.rlscheck] tenant_column", "a column name")
    safeupdate = table.get("safeupdate", True)
    if not isinstance(safeupdate, bool):
        raise ConfigError(f"{where}: [tool.rlscheck] safeupdate must be true or false, got {safeupdate!r}")
    if "fail_on" in table and table["fail_on"] not in FAIL_ON:
        raise ConfigError(f"{where}: [tool.rlscheck] fail_on must be \"error\", \"warn\" or \"info\", got {table['fail_on']!r}")
    tables = {
        name: _table_entry(name, spec, f'{where}: [tool.rlscheck.tables."{name}"]')
        for name, spec in _tables(table, "tables", where).items()
    }
    principals: dict[str, PrincipalConfig] = {}
    subs: dict[str, str] = {}
    for name, spec in _tables(table, "principals", where).items():
        principals[name] = _principal(spec, f"{where}: [tool.rlscheck.principals.{name}]")
        sub = _normal_uuid(spec["sub"])
        if sub in subs:
            raise ConfigError(
                f"{where}: [tool.rlscheck.principals.{subs[sub]}] and [tool.rlscheck.principals.{name}] have the same "
                f"sub {spec['sub']!r}: each principal must be a different user (its auth.users id)"
            )
        subs[sub] = name
    ignore = {}
    for key, reason in _tables(table, "ignore", where, values=False).items():
        if ":" not in key:
            raise ConfigError(f"{where}: [tool.rlscheck.ignore] key {key!r} must be \"rule-id:schema.object\"")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{where}: [tool.rlscheck.ignore] {key!r} needs a reason (a non-empty string)")
        ignore[key] = reason
    return SweepConfig(
        schemas=schemas,
        tenant_column=tenant_column,
        fail_on=table.get("fail_on"),
        ignore=MappingProxyType(ignore),
        tables=MappingProxyType(tables),
        principals=MappingProxyType(principals),
        safeupdate=safeupdate,
    )


def _table_entry(name: str, spec: Mapping[str, Any], where: str) -> TableConfig:
    """``[tool.rlscheck.tables."schema.table"]``: tenant_column or tenant_sql, and commands."""
    unknown = set(spec) - _TABLE_KEYS
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(_TABLE_KEYS)}")
    if "." not in name:
        raise ConfigError(f'{where}: name tables schema-qualified, e.g. "public.{name}"')
    tenant_column = tenant_sql = None
    commands = None
    if "tenant_column" in spec:
        tenant_column = _text(spec["tenant_column"], f"{where} tenant_column", "a column name")
    if "tenant_sql" in spec:
        tenant_sql = _text(spec["tenant_sql"], f"{where} tenant_sql", 'an SQL expression over the row, e.g. "(select '
                           'p.org_id from parent p where p.id = parent_id)"')
    if "tenant_column" in spec and "tenant_sql" in spec:
        raise ConfigError(f"{where}: give tenant_column or tenant_sql, not both")
    if "commands" in spec:
        listed = spec["commands"]
        wrong = (
            [listed] if not isinstance(listed, list)
            else [c for c in listed if not isinstance(c, str) or c.upper() not in COMMANDS]
        )
        if wrong:
            raise ConfigError(
                f"{where} commands must be a list of {', '.join(COMMANDS)} (the commands the API should have), "
                f"got {listed!r}"
            )
        commands = tuple(c.upper() for c in listed)
    return TableConfig(tenant_column, tenant_sql, commands)


def _principal(spec: Mapping[str, Any], where: str) -> PrincipalConfig:
    """``[tool.rlscheck.principals.NAME]``: a uuid sub, a string or integer tenant, string role
    and email, a table of claims."""
    unknown = set(spec) - _PRINCIPAL_KEYS
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(_PRINCIPAL_KEYS)}")
    if "sub" not in spec:
        raise ConfigError(f'{where} needs sub = "<the user\'s auth.users id>", e.g. sub = "{EXAMPLE_SUB}"')
    sub = spec["sub"]
    if not isinstance(sub, str) or not _UUID.fullmatch(sub):
        raise ConfigError(
            f"{where} sub must be the user's id as a UUID string (auth.uid() casts it to uuid), "
            f'e.g. sub = "{EXAMPLE_SUB}", got {sub!r}'
        )
    tenant = spec.get("tenant")
    if "tenant" in spec and (isinstance(tenant, bool) or not isinstance(tenant, (str, int)) or tenant == ""):
        raise ConfigError(
            f"{where} tenant must be the id of the user's tenant, a string (a uuid, a slug) or an integer "
            f"(a bigint key), got {tenant!r}"
        )
    role = None
    if "role" in spec:
        role = _text(spec["role"], f"{where} role", 'a database role, e.g. "authenticated"')
    if "email" in spec and not isinstance(spec["email"], str):
        raise ConfigError(f"{where} email must be a string, got {spec['email']!r}")
    if "claims" in spec and not isinstance(spec["claims"], dict):
        raise ConfigError(
            f"{where} claims must be a table of JWT claims, e.g. claims = {{ app_metadata = {{ tenant = \"…\" }} }}, "
            f"got {spec['claims']!r}"
        )
    return PrincipalConfig(
        # as PostgreSQL prints a uuid: the checks compare it with ``user_id::text``
        sub=str(uuid.UUID(_normal_uuid(sub))),
        tenant=tenant,
        role=role,
        claims=_frozen(spec["claims"]) if "claims" in spec else None,
        email=spec.get("email"),
    )


def _normal_uuid(text: str) -> str:
    return text.strip("{}").replace("-", "").lower()


def _text(value: Any, what: str, expected: str) -> str:
    """A non-empty string, or a ConfigError saying what ``what`` should be."""
    if isinstance(value, str) and value.strip():
        return value
    raise ConfigError(f"{what} must be {expected}, got {value!r}")


def _text_list(value: Any, what: str, expected: str, example: str) -> list[str]:
    """A non-empty list of non-empty strings."""
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return list(value)
    raise ConfigError(f"{what} must be a list of {expected}, e.g. {example}, got {value!r}")


def _tables(table: Mapping[str, Any], key: str, where: str, *, values: bool = True) -> Mapping[str, Any]:
    """``[tool.rlscheck.<key>]`` as a table (of tables, with ``values``)."""
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [tool.rlscheck] {key} must be a table ([tool.rlscheck.{key}]), got {value!r}")
    for name, entry in value.items() if values else ():
        if not isinstance(entry, dict):
            header = f'"{name}"' if "." in name else name
            raise ConfigError(f"{where}: [tool.rlscheck.{key}.{header}] must be a table of settings, got {entry!r}")
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
