"""The content-addressed cache of migrated templates: a stopped server's data directory
holding the template database as a build left it, kept between runs.

A key is a digest of everything the build's outcome depends on (:func:`template_key`):
the server's build and extensions, the plugin's own files, the account and locale the
cluster is made with, the server settings, the Supabase shim's SQL and every migration and
seed file's text in its order. Change one byte of any of them and the key is new.

An entry is a directory ``t-<key>`` under ``<cache>/templates``: ``data`` (the cluster,
owned by the server's account) and ``entry.json`` (what the build found out, the
password of the cluster's superuser, and a manifest of the data directory's files and
sizes). It is built in a staging directory and renamed into place, so a half-written one
never has the name; one whose files no longer match its manifest is removed, not used.

A lock file per key (``flock``) makes one run the builder: a second run or xdist
controller that wants the same key waits for it, then uses its entry. Entries nobody used
for longest are removed once the cache holds more than :func:`max_bytes`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE_OFF_ENV",
    "Entry",
    "TemplateCache",
    "max_bytes",
    "plugin_digest",
    "template_key",
]

#: Bumped when what an entry holds, or how it is used, changes.
LAYOUT = "1"
#: ``RLSCHECK_TEMPLATE_CACHE=0``: build the template on every run (as --rlscheck-no-cache).
CACHE_OFF_ENV = "RLSCHECK_TEMPLATE_CACHE"
#: The cache's size bound in MiB (``RLSCHECK_CACHE_MAX_MB``); least recently used go first.
MAX_MB_ENV = "RLSCHECK_CACHE_MAX_MB"
DEFAULT_MAX_MB = 2048
#: How long an entry whose rows were written with the clock is used (seconds,
#: ``RLSCHECK_CACHE_CLOCK_TTL``): a seeded ``now() + interval '1 day'`` ages with it.
CLOCK_TTL_ENV = "RLSCHECK_CACHE_CLOCK_TTL"
DEFAULT_CLOCK_TTL = 3600
ENTRY_FILE = "entry.json"
PREFIX = "t-"


@dataclass(frozen=True)
class Entry:
    """A cached template: where its cluster is, and what its build found out."""

    key: str
    path: Path
    template: str  # the template database's name in the cluster
    parts: tuple[str, ...]  # the Supabase shim's parts in it
    owner: str | None  # the role the project's SQL ran as
    platform_dump: bool
    notes: tuple[str, ...]  # what the migration runner said (warnings), said again on every use
    password: str  # of the cluster's superuser, as the build left it
    built_at: float  # seconds since the epoch
    size: int  # bytes in the data directory
    manifest: dict[str, int]  # relative path -> size, of every file in the data directory
    #: Rows were written while the sources named the clock: the entry is used for
    #: :func:`clock_ttl` seconds after its build only.
    clock: bool = False

    @property
    def data(self) -> Path:
        return self.path / "data"

    @property
    def short_key(self) -> str:
        return self.key[:12]

    def built_line(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.built_at))

    def expired(self, now: float | None = None) -> bool:
        return self.clock and (time.time() if now is None else now) - self.built_at > clock_ttl()

    def describe(self) -> str:
        """For the report header: "cached template (key …, built …)"."""
        line = f"cached template (key {self.short_key}, built {self.built_line()}"
        if self.clock:
            line += f"; its rows were written while the sources read the clock: rebuilt {_age(clock_ttl())} after"
        return line + ")"


def clock_ttl() -> float:
    try:
        return max(0.0, float(os.environ.get(CLOCK_TTL_ENV, DEFAULT_CLOCK_TTL)))
    except ValueError:
        return float(DEFAULT_CLOCK_TTL)


def _age(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return "an hour" if hours == 1 else f"{hours} hours"
    return f"{seconds:g} s"


def max_bytes() -> int:
    try:
        return max(0, int(os.environ.get(MAX_MB_ENV, DEFAULT_MAX_MB))) * 1024 * 1024
    except ValueError:
        return DEFAULT_MAX_MB * 1024 * 1024


@lru_cache(maxsize=1)
def plugin_digest() -> str:
    """A digest of the plugin's own files (its code, SQL and stand-ins): an edited
    checkout is a new plugin, whatever its version says."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def directory_identity(*directories: Path) -> str:
    """Names, sizes and modification times of the files in ``directories`` (not their
    subdirectories): an extension installed or upgraded changes it."""
    digest = hashlib.sha256()
    for directory in directories:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            digest.update(f"{directory}: missing\0".encode())
            continue
        for name in names:
            try:
                st = os.stat(directory / name)
            except OSError:
                continue
            digest.update(f"{directory}/{name}:{st.st_size}:{st.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def template_key(ingredients: Iterable[tuple[str, str]]) -> str:
    """The key of a build made of ``ingredients`` (name, text), in their order."""
    digest = hashlib.sha256(f"rlscheck template cache {LAYOUT}\0".encode())
    for name, text in ingredients:
        data = text.encode()
        digest.update(f"{name}\0{len(data)}\0".encode() + data + b"\0")
    return digest.hexdigest()


def _manifest(data: Path) -> dict[str, int]:
    files: dict[str, int] = {}
    for directory, _dirs, names in os.walk(data):
        for name in names:
            path = os.path.join(directory, name)
            try:
                files[os.path.relpath(path, data)] = os.lstat(path).st_size
            except OSError:
                continue
    return files


class TemplateCache:
    """The entries under ``root`` (``<cache>/templates``); ``run_as``: the server's account,
    which owns every entry's data directory."""

    def __init__(self, root: Path, run_as: tuple[int, int] | None) -> None:
        self.root = root
        self.run_as = run_as

    @classmethod
    def at(cls, cache: Path, run_as: tuple[int, int] | None) -> TemplateCache:
        if run_as:  # the server's account copies from it (a 0700 one of root's it cannot enter)
            os.chmod(cache, 0o755)
        root = cache / "templates"
        root.mkdir(mode=0o755, exist_ok=True)
        os.chmod(root, 0o755)  # the server's account copies from it
        return cls(root, run_as)

    def _path(self, key: str) -> Path:
        return self.root / f"{PREFIX}{key}"

    @contextmanager
    def locked(self, key: str, *, wait: bool = True) -> Iterator[bool]:
        """The key's lock, held for the block: one run builds or copies an entry at a time.
        ``wait=False``: yields False at once when another run holds it."""
        fd = os.open(self.root / f".{PREFIX}{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock

    def lookup(self, key: str) -> Entry | None:
        """The entry of ``key`` if it is whole (its files match its manifest); one that is
        not is removed. Call with the key's lock held."""
        path = self._path(key)
        if not path.exists():
            return None
        entry = self._read(key, path)
        if entry is None or entry.expired() or _manifest(entry.data) != entry.manifest:
            self._remove(path)
            return None
        os.utime(path)  # used now: the last to be pruned
        return entry

    def peek(self, key: str) -> Entry | None:
        """The entry of ``key`` as it looks now, without the lock or a check (for the report
        header, before the run decides)."""
        path = self._path(key)
        return self._read(key, path) if path.exists() else None

    def _read(self, key: str, path: Path) -> Entry | None:
        try:
            raw = json.loads((path / ENTRY_FILE).read_text())
            return Entry(
                key=key, path=path, template=str(raw["template"]), parts=tuple(raw["parts"]), owner=raw["owner"],
                platform_dump=bool(raw["platform_dump"]), notes=tuple(raw["notes"]), password=str(raw["password"]),
                built_at=float(raw["built_at"]), size=int(raw["size"]), manifest=dict(raw["manifest"]),
                clock=bool(raw.get("clock", False)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, key: str, fill: Any, *, track: Any = None, forget: Any = None, **meta: Any) -> Entry:
        """A new entry for ``key``: ``fill(target)`` writes the stopped cluster's data
        directory to ``target`` (which does not exist yet), then the entry is described
        and renamed into place. Call with the key's lock held. ``track``/``forget``: the
        reaper's, told of the staging directory (a killed run leaves none)."""
        staging = Path(tempfile.mkdtemp(prefix=f".{PREFIX}{key[:12]}-", dir=self.root))
        if track:
            track(str(staging))
        try:
            if self.run_as:
                os.chown(staging, *self.run_as)
            fill(staging / "data")
            manifest = _manifest(staging / "data")
            record = {**meta, "manifest": manifest, "size": sum(manifest.values()), "built_at": time.time()}
            fd = os.open(staging / ENTRY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            target = self._path(key)
            self._remove(target)
            os.rename(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
            if forget:
                forget(str(staging))
        entry = self._read(key, target)
        assert entry is not None
        self.prune(keep=key)
        return entry

    def evict(self, key: str) -> None:
        self._remove(self._path(key))

    def entries(self) -> list[Entry]:
        found = []
        for path in self.root.glob(f"{PREFIX}*"):
            entry = self._read(path.name[len(PREFIX):], path)
            if entry is not None:
                found.append(entry)
        return found

    def prune(self, *, keep: str | None = None, limit: int | None = None) -> list[str]:
        """Remove the least recently used entries until the cache holds at most ``limit``
        bytes (default :func:`max_bytes`); entries another run holds the lock of stay, as
        does ``keep``. Also what half-written staging directories were left behind by a
        killed run (older than an hour). Returns the keys removed."""
        limit = max_bytes() if limit is None else limit
        for stale in self.root.glob(f".{PREFIX}*-*"):
            try:
                if stale.is_dir() and stale.lstat().st_mtime < time.time() - 3600:
                    shutil.rmtree(stale, ignore_errors=True)
            except OSError:
                pass
        entries = sorted(self.entries(), key=lambda e: _mtime(e.path))
        total = sum(e.size for e in entries)
        removed = []
        for entry in entries:
            if total <= limit:
                break
            if entry.key == keep:
                continue
            with self.locked(entry.key, wait=False) as held:
                if held:
                    self._remove(entry.path)
                    removed.append(entry.key)
                    total -= entry.size
        return removed

    def clear(self) -> int:
        """Remove every entry no run is using; returns how many went."""
        count = 0
        for path in list(self.root.glob(f"{PREFIX}*")):
            key = path.name[len(PREFIX):]
            with self.locked(key, wait=False) as held:
                if held:
                    self._remove(path)
                    count += 1
        return count

    @staticmethod
    def _remove(path: Path) -> None:
        if not path.exists():
            return
        # renamed first, so that no reader finds a half-removed entry under the key
        doomed = path.with_name(f".{path.name}-removed-{os.getpid()}")
        try:
            os.rename(path, doomed)
        except OSError:
            doomed = path
        shutil.rmtree(doomed, ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0

