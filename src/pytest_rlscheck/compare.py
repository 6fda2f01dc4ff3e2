"""The plumbing of ``--rlscheck-compare=REV``: the project's migrations and seed as they are
at a git revision (:func:`settings_at`), and a second template built from them on the
server the run already has (:func:`session_at`, :class:`RevisionSession`).

What is measured on the two templates, and how it is reported, is not this module's job.

Reading a revision never touches the user's work tree or index: the files are listed with
``git ls-tree`` and read with ``git cat-file`` (raw blobs: no smudge or end-of-line filter
runs, so a Git LFS file is its pointer, as ``git show REV:path`` prints it), then written
under a directory the caller owns, in the repository's layout. The migration and seed rules
(:class:`.config.SourceRule`) are then applied to that copy with the same functions the work
tree's files are found with (:func:`.config.resolve_sql_files`, :func:`.config.skip_reason`
through it, :func:`.config.skipped_migrations`, ...).

Entries that are not plain files, in the parts of the revision that are copied:

- a symlink is written as a symlink with the same target. One whose target is inside the
  repository gets that target copied too, as it is at the revision (so it is the
  revision's bytes, and a file reached twice is applied once, as in the work tree); one
  whose target is relative but leaves the repository is pointed at the same place from
  the real repository (with a note: that file is the machine's, not the revision's), and
  an absolute one is kept as it is (likewise);
- a submodule becomes an empty directory (its files are not read), as in a clone that did
  not initialize it, with a note.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import posixpath
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import psycopg
from psycopg import sql

from .cluster import ClusterState, clean_up, snapshot
from .config import (
    DEFAULT_MIGRATIONS,
    CliConfig,
    Settings,
    SourceRule,
    check_versions,
    empty_directories,
    resolve_sql_files,
    skipped_migrations,
)
from .databases import Janitor
from .extensions import ExtensionPlan
from .errors import ConfigError, Location, MigrationError, RlscheckError
from .migrations import SqlFile, load_files
from .owner import OWNER_ATTRIBUTES, PLAIN_OWNER_ATTRIBUTES
from .reaper import Reaper
from .server import ExternalServer, LocalServer, Server
from .session import RlsSession
from .template import TemplateBuild

__all__ = ["RevisionSession", "RevisionSettings", "session_at", "settings_at"]

#: Links followed while resolving one path; more is a loop.
MAX_LINKS = 40


@dataclass(frozen=True)
class RevisionSettings(Settings):
    """:class:`.config.Settings` whose migration and seed files are those of a git revision,
    copied under :attr:`exported` (the repository's root there); everything else is the
    work tree's configuration."""

    #: The revision as the user gave it ("main", "HEAD~1"): failures name files as
    #: ``REV:path``, which ``git show`` reads.
    revision: str = ""
    #: The commit it names (40 hex digits).
    commit: str = ""
    #: Where the revision's files were written: the repository's root in the copy.
    exported: Path | None = None
    #: The repository's root in the work tree.
    repository: Path | None = None

    def label(self, path: Path) -> str:
        """How a file of the copy is shown: ``REV:path/in/the/repository``."""
        if self.exported is not None:
            try:
                return f"{self.revision}:{PurePosixPath(Path(path).relative_to(self.exported)).as_posix()}"
            except ValueError:
                pass
        return f"{self.revision}:{path}"


# -- reading a revision --------------------------------------------------------------


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never write the index, not even to refresh it
    try:
        return subprocess.run(["git", "-C", str(cwd), *args], input=stdin, capture_output=True, env=env, check=False)
    except FileNotFoundError:
        raise RlscheckError(
            "rlscheck: comparing with a git revision needs git, and there is no git on PATH: install it "
            "(apt-get install git)"
        ) from None


def _git_error(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stderr.decode(errors="replace").strip() or f"git exited with status {proc.returncode}"


@dataclass(frozen=True)
class _Entry:
    mode: str
    kind: str  # "blob", "tree" or "commit"
    oid: str


class _Revision:
    """The tree of one commit, read once (``git ls-tree -r -t``), and copying parts of it."""

    def __init__(self, top: Path, commit: str, revision: str, into: Path) -> None:
        self.top, self.commit, self.revision, self.into = top, commit, revision, into
        proc = _git(top, "ls-tree", "-r", "-t", "-z", "--full-tree", commit)
        if proc.returncode != 0:
            raise RlscheckError(f"rlscheck: cannot list the files of {revision} ({commit[:12]}): {_git_error(proc)}")
        self.entries: dict[str, _Entry] = {}
        self.children: dict[str, list[str]] = {"": []}
        for record in proc.stdout.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, kind, oid = meta.decode().split(" ")
            path = os.fsdecode(name)
            self.entries[path] = _Entry(mode, kind, oid)
            self.children.setdefault(posixpath.dirname(path), []).append(path)
        self.notes: list[str] = []
        self._done: set[str] = set()
        self._blobs: dict[str, str] = {}  # path in the repository -> object id, to be written

    def export(self, path: str, hops: int = 0) -> None:
        """Copy ``path`` (relative to the repository's root, ``""`` for all of it) as it is at
        the revision: a directory with everything under it; nothing when it does not exist
        there. Symlinks on the way are followed (and written)."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        for i in range(len(parts)):
            prefix = "/".join(parts[: i + 1])
            entry = self.entries.get(prefix)
            if entry is None:
                return
            if entry.mode == "120000" and i + 1 < len(parts):
                target = self._link(prefix, entry, hops)
                if target is not None:
                    self.export(posixpath.join(target, *parts[i + 1 :]), hops + 1)
                return
        if not parts:
            (self.into).mkdir(parents=True, exist_ok=True)
            for child in self.children.get("", []):
                self._copy(child, hops)
            return
        self._copy("/".join(parts), hops)

    def _copy(self, path: str, hops: int) -> None:
        if path in self._done:
            return
        self._done.add(path)
        entry = self.entries[path]
        where = self.into / path
        where.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "tree":
            where.mkdir(exist_ok=True)
            for child in self.children.get(path, []):
                self._copy(child, hops)
        elif entry.kind == "commit":
            where.mkdir(exist_ok=True)
            self.notes.append(
                f"at {self.revision}, {path} is a submodule: it is compared as an empty directory (its files are "
                "not read)"
            )
        elif entry.mode == "120000":
            target = self._link(path, entry, hops)
            if target is not None:
                self.export(target, hops + 1)
        else:
            self._blobs[path] = entry.oid

    def _link(self, path: str, entry: _Entry, hops: int) -> str | None:
        """Write the symlink ``path``; the repository path its target is (None: outside)."""
        if hops > MAX_LINKS:
            raise ConfigError(f"rlscheck: at {self.revision}, {path} is part of a loop of symlinks")
        target = os.fsdecode(self._read([entry.oid])[entry.oid])
        where = self.into / path
        where.parent.mkdir(parents=True, exist_ok=True)
        inside = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if posixpath.isabs(target) or inside == ".." or inside.startswith("../"):
            if not posixpath.isabs(target):
                target = os.path.normpath(self.top / posixpath.dirname(path) / target)
            self.notes.append(
                f"at {self.revision}, {path} is a symlink to {target}, outside the repository: the file there now is "
                "used, not one of the revision"
            )
            inside = None
        if not where.is_symlink():
            os.symlink(target, where)
        return None if inside is None else ("" if inside == "." else inside)

    def _read(self, oids: Iterable[str]) -> dict[str, bytes]:
        """The objects' contents, through one ``git cat-file --batch``."""
        wanted = list(dict.fromkeys(oids))
        if not wanted:
            return {}
        proc = _git(self.top, "cat-file", "--batch", stdin="".join(f"{o}\n" for o in wanted).encode())
        if proc.returncode != 0:
            raise RlscheckError(f"rlscheck: cannot read the files of {self.revision}: {_git_error(proc)}")
        out, at = {}, 0
        data = proc.stdout
        for oid in wanted:
            end = data.index(b"\n", at)
            header = data[at:end].split(b" ")
            if len(header) != 3:
                raise RlscheckError(f"rlscheck: git cat-file could not read object {oid} of {self.revision}")
            size = int(header[2])
            out[oid] = data[end + 1 : end + 1 + size]
            at = end + 1 + size + 1
        return out

    def write(self) -> None:
        """Write the files :meth:`export` chose."""
        contents = self._read(self._blobs.values())
        for path, oid in self._blobs.items():
            (self.into / path).write_bytes(contents[oid])
        self._blobs.clear()


def _repository(rootdir: Path) -> Path:
    proc = _git(rootdir, "rev-parse", "--show-toplevel")
    top = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0 or not top:
        raise ConfigError(
            f"rlscheck: comparing with a git revision needs a git repository, and {rootdir} is not inside one "
            f"({_git_error(proc) if proc.returncode else 'no work tree'})"
        )
    return Path(top).resolve()


def _commit(top: Path, rev: str) -> str:
    if not rev or rev.startswith("-"):
        raise ConfigError(f"rlscheck: {rev!r} is not a git revision")
    proc = _git(top, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    commit = proc.stdout.decode().strip()
    if proc.returncode != 0 or not commit:
        raise ConfigError(f"rlscheck: the git revision {rev!r} names no commit in the repository at {top}")
    return commit


def _in_repository(path: Path, top: Path, rev: str, what: str) -> str:
    """``path`` (absolute, not resolved) relative to the repository, POSIX style."""
    try:
        relative = Path(os.path.normpath(path)).relative_to(top)
    except ValueError:
        raise ConfigError(
            f"rlscheck: {what} ({path}) is outside the git repository at {top}, so it has no version at {rev}"
        ) from None
    return PurePosixPath(relative).as_posix() if str(relative) != "." else ""


def _spec_path(spec: str, base: Path) -> Path:
    path = Path(spec).expanduser()
    return path if path.is_absolute() else base / path


def _static_prefix(path: Path) -> Path:
    """The part of a glob before its first wildcard: the directory to copy."""
    parts = []
    for part in path.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts)


@dataclass
class _Rebased:
    """A rule's specs, moved from the work tree to the copy of the revision."""

    specs: list[str]  # absolute, in the copy
    base: Path
    originals: list[str]  # as the rule spells them, for notes


def _rebase(rule: SourceRule, revision: _Revision, what: str) -> _Rebased:
    """Copy what ``rule``'s specs name at the revision, and say which name nothing there."""
    base = Path(os.path.abspath(rule.base or revision.top))
    base_in_repo = _in_repository(base.resolve() if base.exists() else base, revision.top, revision.revision, what)
    new_base = revision.into / base_in_repo
    specs, originals = [], []
    for spec in rule.specs:
        path = _spec_path(spec, base.resolve() if base.exists() else base)
        in_repo = _in_repository(path, revision.top, revision.revision, f"{what} {spec!r}")
        moved = revision.into / in_repo
        magic = glob.has_magic(str(path))
        revision.export(_in_repository(_static_prefix(path), revision.top, revision.revision, what) if magic else in_repo)
        specs.append(str(moved))
        originals.append(spec)
    return _Rebased(specs, new_base, originals)


def _existing(specs: Sequence[str], originals: Sequence[str]) -> tuple[list[str], list[str]]:
    """The specs that exist (or match) in the copy, and the original spellings of the rest."""
    kept, gone = [], []
    for spec, original in zip(specs, originals):
        if glob.has_magic(spec):
            found = any(Path(p).is_file() for p in glob.glob(spec, recursive=True))
        else:
            found = os.path.exists(spec)
        (kept if found else gone).append(spec if found else original)
    return kept, gone


def settings_at(settings: Settings, rev: str, into: Path) -> RevisionSettings:
    """``settings`` with the migration and seed files as they are at the git revision ``rev``.

    The repository is the one ``settings.rootdir`` is in. The files are read with git (no
    checkout: the work tree and the index are left as they are) and written under ``into``
    (a directory the caller owns, and removes), laid out as in the repository
    (``into/supabase/migrations/...``). They are found with the rules the work tree's were
    found with (:attr:`.config.Settings.migration_rule` and ``seed_rule``): the same migration
    directories, files and globs, listed as they are at ``rev`` (a migration added since is
    absent, one deleted since is present, one edited has its old bytes), the Supabase CLI's
    skip rules and order; likewise the seed. The rest of the configuration is the work
    tree's. A directory, file or pattern that names nothing at ``rev`` contributes no file,
    and a note says so (a branch may add the project's first migration).

    Raises :class:`.errors.ConfigError` when ``settings.rootdir`` is not in a git repository,
    when ``rev`` names no commit, when a source is outside the repository, and what
    :func:`.config.resolve_sql_files` raises at ``rev``; :class:`.errors.RlscheckError` when
    git is not installed or fails.
    """
    top = _repository(settings.rootdir)
    commit = _commit(top, rev)
    into = Path(os.path.abspath(into))
    into.mkdir(parents=True, exist_ok=True)
    revision = _Revision(top, commit, rev, into)
    migration_rule = settings.migration_rule or _guessed_rule(settings)
    seed_rule = settings.seed_rule or SourceRule("listed", tuple(str(p) for p in settings.seed), settings.rootdir)

    migrations_at = _rebase(migration_rule, revision, "the migrations")
    seed_at = _rebase(seed_rule, revision, "the seed")
    revision.write()
    notes = list(revision.notes)

    kept, gone = _existing(migrations_at.specs, migrations_at.originals)
    for spec in gone:
        notes.append(f"at {rev}, {spec!r} ({_where(migration_rule)}) does not exist: no migrations from it")
    migrations = resolve_sql_files(kept, migrations_at.base, f"the migrations at {rev}", sort=True)
    check_versions(migrations)

    if seed_rule.kind == "cli":
        seed_files, cli_notes = CliConfig(seed_at.base / "config.toml", True, seed_rule.specs).seed_files()
        seed: tuple[Path, ...] = seed_files
        notes += [note.replace(str(seed_at.base / "config.toml"), f"supabase/config.toml, at {rev}")
                  for note in cli_notes]
    else:
        seed_kept, seed_gone = _existing(seed_at.specs, seed_at.originals)
        if seed_rule.kind == "listed":
            notes += [f"at {rev}, the seed {spec!r} does not exist: it is not applied" for spec in seed_gone]
        seed = resolve_sql_files(seed_kept, seed_at.base, f"the seed at {rev}", sort=False)

    fields = {f.name: getattr(settings, f.name) for f in dataclasses.fields(Settings)}
    fields.update(
        migrations=migrations,
        seed=seed,
        migration_origin=f"{settings.migration_origin}, at {rev} ({commit[:12]})",
        empty_migration_dirs=empty_directories(kept, migrations_at.base),
        skipped_migrations=skipped_migrations(kept, migrations_at.base),
        notes=tuple(notes),
        migration_rule=SourceRule(migration_rule.kind, tuple(kept), migrations_at.base),
        seed_rule=SourceRule(seed_rule.kind, seed_rule.specs, seed_at.base),
    )
    return RevisionSettings(**fields, revision=rev, commit=commit, exported=into, repository=top)


def _where(rule: SourceRule) -> str:
    return "the default" if rule.kind == "default" else "as configured"


def _guessed_rule(settings: Settings) -> SourceRule:
    """For a Settings made without a rule: the directories its migrations are in, or the default."""
    if not settings.migrations:
        return SourceRule("default", (DEFAULT_MIGRATIONS,), settings.rootdir)
    directories = tuple(dict.fromkeys(str(Path(os.path.abspath(p)).parent) for p in settings.migrations))
    return SourceRule("listed", directories, settings.rootdir)


# -- a second template on the run's server ---------------------------------------------


def _labelled(paths: Sequence[Path], kind: str, label: Callable[[Path], str]) -> list[SqlFile]:
    """:func:`.migrations.load_files`, each file shown as ``label(path)`` (``REV:path``),
    in its errors too (a file that is not UTF-8)."""
    files = []
    for path in paths:
        shown = label(path)
        try:
            (file,) = load_files([path], kind, path.parent)
        except MigrationError as exc:
            old = exc.location.file
            raise MigrationError(
                str(exc).replace(old, shown),
                location=Location(shown, exc.location.line, exc.location.column),
                sqlstate=exc.sqlstate,
            ) from None
        files.append(dataclasses.replace(file, display=shown))
    return files


class _RevisionBuild(TemplateBuild):
    """A :class:`.template.TemplateBuild` of a revision's files on the main session's server:
    its files shown as ``REV:path``, the main session's server plan (the server that runs),
    and the Supabase shim's core whenever the main template has it."""

    def __init__(self, settings: Settings, reaper: Reaper, main: RlsSession) -> None:
        super().__init__(settings, reaper)
        self._main = main
        self._labelled: list[SqlFile] | None = None

    def sources(self) -> list[SqlFile]:
        if self._labelled is None:
            label = self.settings.label if isinstance(self.settings, RevisionSettings) else str
            self._labelled = _labelled(self.settings.migrations, "migration", label) + _labelled(
                self.settings.seed, "seed", label
            )
        return self._labelled

    def plan(self) -> ExtensionPlan:
        # the server that runs is the main session's, chosen for the work tree's sources
        return self._main.planned or super().plan()

    @property
    def planned(self) -> ExtensionPlan | None:
        return self._main.planned or super().planned

    def needed_parts(self, files: list[SqlFile]) -> tuple[str, ...]:
        """The shim's parts, as for the work tree; but with the core whenever the main
        template has it (and the project's configuration leaves it to the sources): the
        revision is the same project on the same platform, and the core decides what the
        cluster-wide ``postgres`` role is (a superuser without it)."""
        parts = super().needed_parts(files)
        if self.settings.supabase is None and "core" in self._main.parts and "core" not in parts:
            return ("core",)
        return parts

    def start_server(self) -> Server:
        return self._main.server  # never started here


class RevisionSession(RlsSession):
    """A session whose template is built from ``settings`` (a revision's files, from
    :func:`settings_at`) on the server ``main`` already has, next to ``main``'s template.

    It has a run id of its own, so its databases (``rlscheck_<id>_template``,
    ``rlscheck_<id>_<worker>``, ...) never collide with ``main``'s; :meth:`worker_connection`,
    :meth:`worker_database`, :meth:`sweep_database`, :meth:`fresh_database` and
    :meth:`shared_info` (for xdist workers, which take it as any hand-over) work as
    ``main``'s do. The first :meth:`template` call builds ``main``'s template first (its
    error, if that fails, is this one's too). :meth:`close` drops this session's databases
    and the roles and memberships its build added to the cluster, and nothing else: it
    never stops the server. Close it before ``main``.

    The template is never taken from or stored in the template cache: the cache holds a
    whole stopped cluster, which cannot become a second database of a running server.

    Caveat: roles are cluster-wide. The revision's migrations run on the cluster ``main``'s
    template also runs on: a role they create exists for ``main``'s tests too until
    :meth:`close` (and a plain ``CREATE ROLE`` that both revisions run fails in this build:
    ``role "…" already exists``); an ``ALTER ROLE``, a role's settings or a grant to an
    existing role are not undone (memberships between existing roles the build granted are
    revoked at :meth:`close`). The owner role's attributes (``postgres``: superuser or not)
    are put back to ``main``'s after the build.
    """

    def __init__(self, main: RlsSession, settings: Settings) -> None:
        settings = dataclasses.replace(settings, template_cache=False)
        super().__init__(settings, worker=main.worker)
        while self.run_id == main.run_id:  # pragma: no cover - one chance in 2**32
            self.run_id = secrets.token_hex(4)
            self._janitor = Janitor(
                self._reaper,
                prefix=f"rlscheck_{self.run_id}",
                worker=main.worker,
                server=lambda: self.server,
                template=self._template_database,
            )
        self.main = main
        #: The revision the files are from ("" when ``settings`` is not a RevisionSettings).
        self.revision = getattr(settings, "revision", "")
        self._origin = _RevisionBuild(settings, self._reaper, main)
        #: On a throw-away server: the roles and memberships this build added to the cluster.
        self._added: ClusterState | None = None
        self._built = False

    @property
    def server_started(self) -> bool:
        return self.main.server_started

    @property
    def server(self) -> Server:
        """``main``'s server (started by ``main`` if it has not been yet)."""
        return self.main.server

    def template(self) -> str:
        self.main.template()  # first: the revision's roles must not be there when main's build runs
        if self._built:
            return super().template()
        self._built = True
        server = self.main.server
        if not isinstance(server, LocalServer):  # an existing server: the build tracks the cluster itself
            return super().template()
        with server.admin() as conn:
            before = snapshot(conn)
        try:
            return super().template()
        finally:
            try:
                with server.admin() as conn:
                    self._added = snapshot(conn).added_since(before)
                    self._restore_owner(conn)
            except psycopg.Error:  # the server is gone: the error that says so goes on
                pass

    def _restore_owner(self, conn: psycopg.Connection[Any]) -> None:
        """The build gave the cluster's owner role the attributes of the revision's project
        (with or without the shim's core): back to the main template's."""
        owner = self.main.owner
        if owner and ("core" in self.parts) != ("core" in self.main.parts):
            attributes = OWNER_ATTRIBUTES if "core" in self.main.parts else PLAIN_OWNER_ATTRIBUTES
            conn.execute(sql.SQL("ALTER ROLE {} " + attributes).format(sql.Identifier(owner)))

    def close(self) -> None:
        """Drop this session's databases and what its build added to the cluster's roles;
        ``main``'s server, template and databases are left as they are."""
        self._janitor.close_connection()
        if self.main.server_started:
            server = self.main.server
            self._janitor.drop_all(server)
            if isinstance(server, ExternalServer):
                self._origin.clean_up(server)
            else:
                self._drop_added(server)
        # with main's server gone, what was ours went with it (or, on an existing server,
        # is dropped by this session's reaper, which still tracks it)
        self._janitor.forget()
        self._reaper.close()

    def _drop_added(self, server: Server) -> None:
        added, self._added = self._added, None
        if not added or not (added.roles or added.memberships):
            return
        try:
            notes = clean_up(server.conninfo(server.maintenance_db), added, own_roles=sorted(added.roles))
        except psycopg.Error as exc:
            notes = [f"the clean-up failed: {str(exc).strip()}"]
        for note in notes:
            sys.stderr.write(f"rlscheck: the template at {self.revision or 'the other revision'}: {note}\n")


def session_at(main: RlsSession, settings: Settings) -> RevisionSession:
    """A :class:`RevisionSession`: ``settings``' template on ``main``'s server (built on first
    use). Under pytest-xdist, call it in the controller, which owns the server."""
    return RevisionSession(main, settings)
