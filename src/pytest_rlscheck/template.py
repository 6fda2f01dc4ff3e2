"""The template database, built once per run: the server for the sources (the one that has
the extensions they create, with the stand-ins it lacks), and on it the Supabase shim, the
migrations and the seed.

On an existing server (--rlscheck-dsn) the roles and memberships the build adds outlive
the template database: they are remembered here and removed at the end of the run
(:mod:`.cluster`). The databases cloned from the template are :mod:`.databases`' job; an
xdist worker gets a template built by the controller (:mod:`.handover`).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from .binaries import all_pg_binaries, find_pg_binaries
from .build_inputs import CLOCK_ROWS_SQL, reads_clock, reads_server_files
from .cluster import ClusterState, RunLocks, clean_up, mark, snapshot
from .config import Settings
from .databases import Database
from .errors import MigrationError, RlscheckError, RlscheckWarning, ServerError, ServerLost
from .extensions import (
    MISSING_EXTENSION,
    PART_EXTENSIONS,
    PREINSTALLED,
    ExtensionPlan,
    choose_server,
    implied_extensions,
    platform_extensions_sql,
    requested_extensions,
)
from .migrations import SqlFile, apply_files, load_files
from .reaper import Reaper
from .owner import owner_role_sql, refusal_sql, supautils_plan, supautils_refusal
from .installation import cache_directory
from .server import (
    TEST_SETTINGS,
    ExternalServer,
    InitialData,
    LocalServer,
    Server,
    file_identity,
    server_account,
    start_server,
)
from .template_cache import Entry, TemplateCache, directory_identity, plugin_digest, template_key
from .supabase import NO_API_GRANTS_SQL, created_objects, needed_parts, shim_failure_hint, shim_sql

__all__ = ["OWNER_ROLE", "SUPABASE_SEARCH_PATH", "TemplateBuild", "TemplateSource", "connection_options"]

SUPABASE_SEARCH_PATH = '"$user", public, extensions'


#: The role migrations, seeds and the tests' owner side run as on the throw-away server.
OWNER_ROLE = "postgres"
#: Schemas only a dump of a whole Supabase database creates (``supabase db dump`` leaves them out).
DUMPED_PLATFORM_SCHEMAS = ("auth", "storage", "extensions")


def _refusal(statement: str) -> Any:
    """What runs in place of a statement supautils refuses ``postgres`` (None: none)."""
    message = supautils_refusal(statement)
    return refusal_sql(message) if message else None


def connection_options(parts: Iterable[str], owner: str | None = None) -> str:
    """libpq ``options`` for every connection to the template and its clones: the
    search_path Supabase gives its roles, when the shim's core part is in; and ``owner``
    as the connection's role (``-c role=postgres``: the session's superuser acts as the
    project's ``postgres``; ``RESET ROLE`` comes back to it, ``SET ROLE NONE`` to the
    superuser the plugin measures with)."""
    options = [f"-c search_path={SUPABASE_SEARCH_PATH.replace(' ', '')}"] if "core" in parts else []
    if owner:
        options.append(f"-c role={owner}")
    return " ".join(options)


class TemplateSource(Protocol):
    """Where a session's server and template come from: built here (:class:`TemplateBuild`),
    or handed over by the xdist controller (:class:`.handover.HandedOver`)."""

    parts: tuple[str, ...]  # the shim's parts in the template (known once it is built)
    #: The role the tests' owner side acts as (``postgres`` on the throw-away server; None:
    #: the connection's own, on a --rlscheck-dsn server). Known once the template is built.
    owner: str | None

    @property
    def planned(self) -> ExtensionPlan | None:
        """The server chosen and its stand-ins, if chosen here already."""

    def start_server(self) -> Server: ...

    def build(self, server: Callable[[], Server], create: Callable[[], str]) -> str:
        """The template's name; ``create`` makes the empty database (its name)."""

    #: Where the template came from (the template cache, a build); None: not known here.
    cache_status: CacheStatus | None

    def header_lines(self) -> list[str]: ...

    def stand_in_lines(self) -> list[str]: ...

    def clear_cache(self) -> int:
        """Remove the cached templates no run is using; how many went."""

    def clean_up(self, server: ExternalServer) -> None:
        """At the end of the run: remove what the build added to the cluster."""


@dataclass(frozen=True)
class CacheStatus:
    """Where the run's template came from: ``cached`` (an entry), ``built`` (and stored as
    ``entry``, unless that failed), or ``off`` (``reason``)."""

    state: str
    key: str | None
    entry: Entry | None
    reason: str = ""

    def line(self) -> str:
        if self.state == "cached" and self.entry is not None:
            return self.entry.describe()
        if self.state == "built":
            stored = "stored in the cache" if self.entry is not None else "not stored"
            return f"template built (key {(self.key or '')[:12]}, {stored})"
        return f"template built (the template cache is off: {self.reason})"


class TemplateBuild:
    """The server and template of the run, built in this process."""

    def __init__(self, settings: Settings, reaper: Reaper) -> None:
        self.settings = settings
        self._reaper = reaper
        self._files: list[SqlFile] | None = None
        self._plan: ExtensionPlan | None = None
        self.parts: tuple[str, ...] = ()
        self.owner: str | None = None
        self.platform_dump = False  # the sources bring the platform's schemas (see _elevation)
        self._locks: RunLocks | None = None  # on a DSN server: the run's advisory locks
        self._created: ClusterState | None = None  # roles and memberships the build added there
        self._unmarked: list[str] = []
        self._started = False  # start_server was called
        self._holds_rows = False
        self._parts: tuple[str, ...] | None = None  # the shim's parts these sources need  # the built template holds rows (see build_inputs)
        self._initial: InitialData | None = None  # the cached cluster the server starts from
        self._cached: tuple[TemplateCache, str] | bool | None = None  # see _cache
        #: Where the template came from (the report says); None until known.
        self.cache_status: CacheStatus | None = None

    # -- the server ---------------------------------------------------------------------

    def sources(self) -> list[SqlFile]:
        """The migration and seed files, read once."""
        if self._files is None:
            root = self.settings.rootdir
            self._files = load_files(self.settings.migrations, "migration", root) + load_files(
                self.settings.seed, "seed", root
            )
        return self._files

    def plan(self) -> ExtensionPlan:
        """The server for these sources (the one that has the extensions they create), and
        the stand-ins it needs. Reads the files and looks at the installed servers; starts
        nothing."""
        if self._plan is None:
            files = self.sources()
            parts = self.needed_parts(files)
            requested = requested_extensions((f.display, f.text) for f in files)
            wanted = list(requested)
            if "core" in parts:
                wanted += [*PREINSTALLED, *implied_extensions((f.text for f in files), requested)]
                wanted += [PART_EXTENSIONS[part] for part in parts if part in PART_EXTENSIONS]
            if self.settings.dsn:
                self._plan = ExtensionPlan(binaries=None, requested=requested, wanted=tuple(wanted))
            else:
                # the usual first choice, when it has everything (no need to ask every server)
                first = find_pg_binaries(self.settings.pg_bin, major=self.settings.pg_major)
                have = first.extensions()
                complete = all(name in have for name in wanted) and (
                    self.settings.pg_major is None or first.major == self.settings.pg_major
                )
                candidates = [first] if complete or self.settings.pg_bin else all_pg_binaries()[0]
                self._plan = choose_server(
                    wanted,
                    candidates,
                    requested=requested,
                    use_stand_ins=self.settings.stand_ins,
                    major=self.settings.pg_major,
                )
        return self._plan

    @property
    def planned(self) -> ExtensionPlan | None:
        return self._plan

    def start_server(self) -> Server:
        self._started = True
        return start_server(
            self.settings.dsn, self.plan(), self._reaper, self.settings.server_settings, self.settings.pg_major,
            initial=self._initial,
        )

    def header_lines(self) -> list[str]:
        """For the report header: the server chosen and why, the stand-ins it gets. Never
        raises (a broken file is reported where the build fails)."""
        try:
            lines = self.plan().header_lines()
        except RlscheckError:
            return []
        cache = self.cache_line()
        return [*lines, cache] if cache else lines

    def clear_cache(self) -> int:
        try:
            return TemplateCache.at(cache_directory(), server_account()).clear()
        except (OSError, RlscheckError):
            return 0

    def stand_in_lines(self) -> list[str]:
        """The stand-ins in use, one line each ("simulated: pg_net — ...")."""
        plan = self._plan
        return [f"simulated: {s.describe()}" for s in plan.stood_in] if plan else []

    # -- the template -------------------------------------------------------------------

    def needed_parts(self, files: list[SqlFile]) -> tuple[str, ...]:
        """The Supabase shim's parts these sources need (or the configuration asks for)."""
        if self._parts is None:
            self._parts = needed_parts((f.text for f in files), self.settings.supabase)
        return self._parts

    def shim_files(self, files: list[SqlFile] | None = None) -> tuple[list[SqlFile], frozenset[str]]:
        """The Supabase shim's files for these sources (as the build runs them after the
        owner role's SQL), and the objects the sources create themselves (a dump's own
        schemas: the shim leaves them be)."""
        files = self.sources() if files is None else files
        self.parts = self.needed_parts(files)
        owned = created_objects(f.text for f in files)
        shim = [SqlFile(f"<rlscheck supabase shim: {p}>", shim_sql(p, owned), "shim") for p in self.parts]
        plan = self.plan()
        if "core" in self.parts and not self.settings.sweep.platform.grants_new_tables:
            shim.insert(1, SqlFile("<rlscheck supabase shim: api privileges>", NO_API_GRANTS_SQL, "shim"))
        if "core" in self.parts:
            platform = platform_extensions_sql(plan, (f.text for f in files))
            if platform:
                shim.insert(1, SqlFile("<rlscheck supabase shim: platform extensions>", platform, "shim"))
        return shim, owned

    def build(self, server: Callable[[], Server], create: Callable[[], str]) -> str:
        """Read the sources, choose and start the server (in that order: a broken file
        starts nothing), create the template database and apply the shim, the migrations
        and the seed to it; or, when the template cache has this build, start the server
        from a copy of it (and put a new build there)."""
        files = self.sources()
        shim, owned = self.shim_files(files)
        cached = self._cache(files, shim)
        if cached is None:
            name, notes = self._build(server, create, files, shim, owned)
            self._say(notes)
            return name
        cache, key = cached
        with cache.locked(key):  # one builder per key; a second run waits, then copies
            entry = cache.lookup(key)
            if entry is not None and not self._started:
                self._initial = InitialData(entry.data, entry.password)
                try:
                    server()
                except ServerError as exc:  # a cluster that does not start is no entry
                    cache.evict(key)
                    self._initial = None
                    warnings.warn(RlscheckWarning(
                        f"rlscheck: the cached template (key {entry.short_key}) did not start and was removed; "
                        f"building it again. {str(exc).splitlines()[0]}"), stacklevel=1)
                else:
                    self.parts, self.owner, self.platform_dump = entry.parts, entry.owner, entry.platform_dump
                    self.cache_status = CacheStatus("cached", key, entry)
                    self._say(entry.notes)
                    return entry.template
            name, notes = self._build(server, create, files, shim, owned)
            started = server()
            stored = None
            if isinstance(started, LocalServer):
                try:
                    clock = self._holds_rows and reads_clock(f.text for f in [*shim, *files])
                    stored = cache.store(
                        key, started.snapshot, template=name, parts=list(self.parts), owner=self.owner,
                        platform_dump=self.platform_dump, notes=list(notes), password=started.password, clock=clock,
                        track=self._reaper.track_dir, forget=self._reaper.forget_dir,
                    )
                except (OSError, ServerError) as exc:
                    if isinstance(exc, ServerError) and not started.files.running():
                        raise
                    warnings.warn(RlscheckWarning(f"rlscheck: the template was not cached: {exc}"), stacklevel=1)
            self.cache_status = CacheStatus("built", key, stored)
        self._say(notes)
        return name

    @staticmethod
    def _say(notes: Iterable[str]) -> None:
        for note in notes:
            warnings.warn(RlscheckWarning(note), stacklevel=1)

    def _cache(self, files: list[SqlFile], shim: list[SqlFile]) -> tuple[TemplateCache, str] | None:
        """The template cache and this build's key in it; None when the run builds without
        one (--rlscheck-no-cache, an existing server, no cache directory)."""
        if self._cached is not None:
            return self._cached or None
        self._cached = False
        if not self.settings.template_cache:
            self.cache_status = CacheStatus("off", None, None, "--rlscheck-no-cache")
            return None
        if self.settings.dsn:
            self.cache_status = CacheStatus("off", None, None, "an existing server (--rlscheck-dsn)")
            return None
        if reads_server_files(f.text for f in files):
            self.cache_status = CacheStatus(
                "off", None, None, "the sources have the server read a file (COPY … FROM 'file', pg_read_file), "
                "whose contents cannot be part of the cache key"
            )
            return None
        try:
            run_as = server_account()
            cache = TemplateCache.at(cache_directory(), run_as)
        except (OSError, RlscheckError) as exc:
            self.cache_status = CacheStatus("off", None, None, f"no cache directory: {str(exc).splitlines()[0]}")
            return None
        plan = self.plan()
        assert plan.binaries is not None
        binaries = plan.binaries
        locale = sorted(
            (k, v) for k, v in os.environ.items() if k.startswith("LC_") or k in ("LANG", "LANGUAGE", "TZ", "PGTZ")
        )
        ingredients = [
            ("plugin", plugin_digest()),
            ("server", f"{binaries.bindir.resolve()} {binaries.version} {file_identity(str(binaries.bindir / 'postgres'))}"),
            ("extensions", directory_identity(binaries.sharedir / "extension", binaries.pkglibdir)),
            ("stand-ins", " ".join(f"{s.name} {s.version}" for s in plan.stood_in)),
            ("account", repr(run_as)),
            ("locale", repr(locale)),
            ("settings", repr(sorted(TEST_SETTINGS.items())) + repr(list(self.settings.server_settings))),
            ("parts", " ".join(self.parts)),
            ("owner", repr(owner_role_sql(OWNER_ROLE, "rlscheck_template", supabase="core" in self.parts))),
            *((f"{f.kind} {f.display}", f.text) for f in [*shim, *files]),
        ]
        self._cached = (cache, template_key(ingredients))
        return self._cached

    def cache_line(self) -> str | None:
        """For the report header, before the build: whether the template will come from
        the cache (and which entry), or be built. Never raises."""
        if self.cache_status is not None and self.cache_status.state != "off":
            return self.cache_status.line()
        try:
            files = self.sources()
            cached = self._cache(files, self.shim_files(files)[0])
        except RlscheckError:
            return None
        if cached is None:
            return self.cache_status.line() if self.cache_status else None
        cache, key = cached
        entry = cache.peek(key)
        if entry is not None and not entry.expired():
            return entry.describe()
        return f"template to be built (key {key[:12]}, not in the cache yet)"

    def _build(
        self, server: Callable[[], Server], create: Callable[[], str], files: list[SqlFile], shim: list[SqlFile],
        owned: frozenset[str],
    ) -> tuple[str, tuple[str, ...]]:
        """Start the server and build the template on it: the shim, the migrations, the
        seed. Returns its name and what the migration runner said."""
        started = server()
        # on the throw-away server the project's SQL runs as Supabase's postgres, not as the superuser
        owner = OWNER_ROLE if isinstance(started, LocalServer) else None
        if isinstance(started, ExternalServer):  # roles the build creates outlive it there
            self._locks = RunLocks(started.conninfo(started.maintenance_db))
        with self._locks.building() if self._locks else nullcontext():
            before = self._cluster_state(started)
            if before is not None:  # a kill during the build: the reaper works out what it added
                self._reaper.track_cluster(started.conninfo(started.maintenance_db), before=before)
            try:
                name = create()
                with Database(started, name, connection_options(self.parts)).connect() as conn:
                    if owner:
                        conn.execute(owner_role_sql(owner, name, supabase="core" in self.parts))
                    self._apply_shim(conn, started, shim)
                    if owner:
                        with Database(started, name, connection_options(self.parts, owner)).connect() as project:
                            notes = self._apply_sources(project, started, files, elevate=self._elevation(owned))
                    else:
                        notes = self._apply_sources(conn, started, files, elevate=None)
                    conn.execute("ANALYZE")  # deterministic statistics: autovacuum is off on our server
                    row = conn.execute(CLOCK_ROWS_SQL).fetchone()
                    self._holds_rows = bool(row and row[0])
            except ServerLost as exc:
                raise ServerLost(f"{exc}\n  {started.lost_report()}", location=exc.location) from None
            finally:
                if before is not None:  # also after a failed migration: earlier files committed
                    try:
                        self._remember_cluster_changes(started, before)
                    except psycopg.Error:  # the server is gone: the error that says so goes on
                        pass
        self.owner = owner
        return name, notes

    def _apply_shim(self, conn: psycopg.Connection[Any], server: Server, shim: list[SqlFile]) -> None:
        if not shim:
            return
        try:
            apply_files(conn, shim, server=server.description)
        except MigrationError as exc:
            raise MigrationError(
                f"{exc}\n  rlscheck: installing the Supabase shim failed on {server.description}. "
                + shim_failure_hint(exc, server.user),
                location=exc.location,
                sqlstate=exc.sqlstate,
            ) from None

    def _elevation(self, owned: frozenset[str]) -> Callable[[str], tuple[str, ...] | None] | None:
        """Which statements run as the superuser: those supautils runs so for ``postgres``;
        all of them when the sources bring the platform's own schemas (a pg_dump of a whole
        Supabase database, which only its superuser could restore)."""
        if "core" not in self.parts:
            return None  # a plain PostgreSQL project: its postgres is a superuser
        if any(f"schema {schema}" in owned for schema in DUMPED_PLATFORM_SCHEMAS):
            self.platform_dump = True
            return lambda statement: ()
        return supautils_plan

    def _apply_sources(
        self,
        conn: psycopg.Connection[Any],
        server: Server,
        files: list[SqlFile],
        *,
        elevate: Callable[[str], tuple[str, ...] | None] | None,
    ) -> tuple[str, ...]:
        """The migrations and the seed; ``elevate`` says which statements run as the
        superuser (the connection acts as ``postgres`` otherwise)."""
        try:
            refuse = _refusal if elevate is supautils_plan and "core" in self.parts else None
            notes = apply_files(conn, files, server=server.description, elevate=elevate, refuse=refuse).notes
            if self.platform_dump:
                notes += (
                    "the sources create the platform's own schemas (auth, storage or extensions: a dump of a whole "
                    "Supabase database), so they ran as the superuser, as only supabase_admin could restore them; "
                    "on Supabase, postgres runs `supabase db dump` output, which leaves those schemas out",
                )
            return notes
        except MigrationError as exc:
            plan = self.plan()
            first = str(exc).split("\n", 1)[0]
            found = MISSING_EXTENSION.search(first)
            name = (found.group(1) or found.group(2)) if found else None
            name = name or next((n for n in plan.missing if n in first), None)  # pg_cron's own words
            if name and name in plan.missing and plan.looked_at:
                raise MigrationError(
                    f"{exc}\n{plan.missing_report(name)}", location=exc.location, sqlstate=exc.sqlstate
                ) from None
            raise

    # -- what the build added to an existing server's cluster ---------------------------

    def _cluster_state(self, server: Server) -> ClusterState | None:
        if self._locks is None:
            return None
        with server.admin() as conn:
            return snapshot(conn)

    def _remember_cluster_changes(self, server: Server, before: ClusterState) -> None:
        with server.admin() as conn:
            created = snapshot(conn).added_since(before)
            unmarked = mark(conn, sorted(created.roles))
        self._created, self._unmarked = created, unmarked
        self._reaper.track_cluster(server.conninfo(server.maintenance_db), created=created, unmarked=unmarked)

    def clean_up(self, server: ExternalServer) -> None:
        """Drop the roles and memberships the build added (when no other run is active)."""
        locks, self._locks = self._locks, None
        if locks is not None:
            locks.close()  # our run lock goes first: the clean-up counts the runs still holding one
        created, self._created = self._created, None
        if created is None:
            return
        try:
            notes = clean_up(server.conninfo(server.maintenance_db), created, own_roles=self._unmarked)
        except psycopg.Error as exc:
            notes = [f"the clean-up failed: {str(exc).strip()}"]
        else:
            self._reaper.forget_cluster()
        for note in notes:
            sys.stderr.write(f"rlscheck: on {server.description}: {note}\n")
