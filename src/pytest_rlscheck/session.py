"""The session's databases: one template with the migrations applied, one database per
worker cloned from it, and fresh clones for tests that must commit.

Built lazily on first use. Under pytest-xdist the controller builds the server and the
template once and hands their coordinates to the workers (:meth:`RlsSession.shared_info`).
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
import threading
import warnings
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from .cluster import ClusterState, RunLocks, clean_up, mark, snapshot
from .config import Settings
from .errors import MigrationError, RlscheckError, RlscheckWarning, ServerLost, error_from_shared, error_to_shared
from .migrations import SqlFile, apply_files, load_files
from .reaper import Reaper
from .server import ExternalServer, LocalServer, Server, ServerFiles, start_server
from .binaries import all_pg_binaries, find_pg_binaries
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
from .supabase import created_objects, needed_parts, shim_failure_hint, shim_sql

__all__ = ["Database", "RlsSession"]

SUPABASE_SEARCH_PATH = '"$user", public, extensions'
CREATE_DATABASE = "CREATE DATABASE {} TEMPLATE {}"
#: On the throw-away server (fsync off), copying files is twice as fast as WAL_LOG.
CREATE_DATABASE_FILE_COPY = CREATE_DATABASE + " STRATEGY FILE_COPY"
DROP_DATABASE = "DROP DATABASE IF EXISTS {} WITH (FORCE)"
#: The shared database takes no connection but the one its tests run on: a second one
#: would commit, and what it committed would be seen by every later test.
ALLOW_CONNECTIONS = "ALTER DATABASE {} ALLOW_CONNECTIONS {}"


@dataclass(frozen=True)
class Database:
    """A database of this session: how to connect to it."""

    server: Server
    name: str
    options: str  # libpq ``options`` (the Supabase search_path), may be empty

    @property
    def dsn(self) -> str:
        return self.server.conninfo(self.name) + (f" options='{self.options}'" if self.options else "")

    def connect(self, *, autocommit: bool = True, **kwargs: Any) -> psycopg.Connection[Any]:
        if self.options:
            kwargs.setdefault("options", self.server.merged_options(self.options))
        return self.server.connect(self.name, autocommit=autocommit, **kwargs)


class RlsSession:
    def __init__(self, settings: Settings, *, worker: str = "main", shared: Mapping[str, Any] | None = None) -> None:
        self.settings = settings
        self.worker = worker
        self._shared = dict(shared) if shared else None
        self._reaper = Reaper()
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._template: str | None = None
        self._worker_db: Database | None = None
        self._worker_conn: psycopg.Connection[Any] | None = None
        self._error: RlscheckError | None = None
        self._owned: set[str] = set()
        self._locks: RunLocks | None = None  # on a DSN server: the run's advisory locks
        self._created: ClusterState | None = None  # roles and memberships the build added there
        self._unmarked: list[str] = []
        self._fresh_count = 0
        self._files: list[SqlFile] | None = None
        self._plan: ExtensionPlan | None = None
        self.parts: tuple[str, ...] = ()
        self.run_id = secrets.token_hex(4)
        if self._shared:
            self.run_id = self._shared["run_id"]
            self.parts = tuple(self._shared["parts"])
            self._plan = ExtensionPlan(binaries=None, requested={})  # the controller chose the server
            if self._shared.get("error"):
                self._error = error_from_shared(self._shared["error"])

    # -- building -------------------------------------------------------------------

    @property
    def options(self) -> str:
        return f"-c search_path={SUPABASE_SEARCH_PATH.replace(' ', '')}" if "core" in self.parts else ""

    @property
    def server_started(self) -> bool:
        """Whether this session has started (or connected to) a server yet."""
        return self._server is not None

    @property
    def server(self) -> Server:
        if self._server is None:
            if self._shared:
                files = self._shared.get("files")
                self._server = ExternalServer(
                    self._shared["conninfo"],
                    description=self._shared["description"],
                    files=ServerFiles(**{**files, "run_as": tuple(files["run_as"]) if files["run_as"] else None})
                    if files
                    else None,
                )
            else:
                plan = self.plan()
                self._server = start_server(
                    self.settings.dsn, plan, self._reaper, self.settings.server_settings, self.settings.pg_major
                )
        return self._server

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
            parts = needed_parts((f.text for f in files), self.settings.supabase)
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

    def template(self) -> str:
        """Name of the template database, built on first call (errors are cached)."""
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._template is None:
                try:
                    self._template = self._shared["template"] if self._shared else self._build_template()
                except RlscheckError as exc:
                    self._error = exc
                    raise
        return self._template

    def environment_lines(self) -> list[str]:
        """For the report header: the server chosen and why, the stand-ins it gets. Never
        raises (a broken file is reported where the build fails)."""
        try:
            return self.plan().header_lines()
        except RlscheckError:
            return []

    def stand_in_lines(self) -> list[str]:
        """The stand-ins in use, one line each ("simulated: pg_net — ...")."""
        if self._shared:
            return list(self._shared.get("stand_ins", ()))
        plan = self._plan
        return [f"simulated: {s.describe()}" for s in plan.stood_in] if plan else []

    def environment(self) -> dict[str, Any]:
        """For the JSON report: the server and the stand-ins."""
        plan = self._plan
        return {
            "server": self._server.description if self._server is not None else None,
            "stand_ins": [{"extension": s.name, "version": s.version, "simulated": s.note} for s in plan.stood_in]
            if plan
            else [],
        }

    def _build_template(self) -> str:
        files = self.sources()
        self.parts = needed_parts((f.text for f in files), self.settings.supabase)
        owned = created_objects(f.text for f in files)  # a dump's own schemas: the shim leaves them be
        shim = [SqlFile(f"<rlscheck supabase shim: {p}>", shim_sql(p, owned), "shim") for p in self.parts]
        plan = self.plan()
        if "core" in self.parts:
            platform = platform_extensions_sql(plan, (f.text for f in files))
            if platform:
                shim.insert(1, SqlFile("<rlscheck supabase shim: platform extensions>", platform, "shim"))
        server = self.server
        if isinstance(server, ExternalServer):  # roles the build creates outlive it there
            self._locks = RunLocks(server.conninfo(server.maintenance_db))
        with self._locks.building() if self._locks else nullcontext():
            before = self._cluster_state()
            if before is not None:  # a kill during the build: the reaper works out what it added
                self._reaper.track_cluster(server.conninfo(server.maintenance_db), before=before)
            try:
                name = self._create(f"rlscheck_{self.run_id}_template", template="template1")
                with Database(server, name, self.options).connect() as conn:
                    notes = self._apply(conn, shim, files)
                    conn.execute("ANALYZE")  # deterministic statistics: autovacuum is off on our server
            except ServerLost as exc:
                raise ServerLost(f"{exc}\n  {server.lost_report()}", location=exc.location) from None
            finally:
                if before is not None:  # also after a failed migration: earlier files committed
                    try:
                        self._remember_cluster_changes(before)
                    except psycopg.Error:  # the server is gone: the error that says so goes on
                        pass
        for note in notes:
            warnings.warn(RlscheckWarning(note), stacklevel=1)
        return name

    def _cluster_state(self) -> ClusterState | None:
        if self._locks is None:
            return None
        with self.server.admin() as conn:
            return snapshot(conn)

    def _remember_cluster_changes(self, before: ClusterState) -> None:
        server = self.server
        with server.admin() as conn:
            created = snapshot(conn).added_since(before)
            unmarked = mark(conn, sorted(created.roles))
        self._created, self._unmarked = created, unmarked
        self._reaper.track_cluster(server.conninfo(server.maintenance_db), created=created, unmarked=unmarked)

    def _apply(self, conn: psycopg.Connection[Any], shim: list[SqlFile], files: list[SqlFile]) -> tuple[str, ...]:
        server = self.server
        if shim:
            try:
                apply_files(conn, shim, server=server.description)
            except MigrationError as exc:
                raise MigrationError(
                    f"{exc}\n  rlscheck: installing the Supabase shim failed on {server.description}. "
                    + shim_failure_hint(exc, server.user),
                    location=exc.location,
                    sqlstate=exc.sqlstate,
                ) from None
        try:
            return apply_files(conn, files, server=server.description).notes
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

    def lost_report(self) -> str:
        """After a broken connection: the state of the server and the end of its log."""
        return self._server.lost_report() if self._server is not None else ""

    def shared_info(self) -> dict[str, Any]:
        """What an xdist worker needs to use this session's server and template."""
        info: dict[str, Any] = {"run_id": self.run_id, "parts": list(self.parts), "error": None, "stand_ins": []}
        try:
            info["template"] = self.template()
            info["parts"] = list(self.parts)
            info["conninfo"] = self.server.conninfo(self.server.maintenance_db)
            info["description"] = self.server.description
            info["stand_ins"] = self.stand_in_lines()
            if isinstance(self.server, LocalServer):
                info["files"] = dataclasses.asdict(self.server.files)
        except RlscheckError as exc:
            info["error"] = error_to_shared(exc)
        return info

    # -- databases ------------------------------------------------------------------

    def _create(self, name: str, *, template: str, closed: bool = False) -> str:
        """Clone ``template`` as ``name``; ``closed``: taking no connection until
        :meth:`worker_connection` opens the one it allows."""
        server = self.server
        if isinstance(server, ExternalServer):
            self._reaper.track_database(server.conninfo(server.maintenance_db), name)
        with server.admin() as conn:
            if name in self._owned:  # re-cloning one of ours
                conn.execute(sql.SQL(DROP_DATABASE).format(sql.Identifier(name)))
            local = isinstance(server, LocalServer) and server.server_version >= 150000
            statement = CREATE_DATABASE_FILE_COPY if local else CREATE_DATABASE
            if closed:
                statement += " ALLOW_CONNECTIONS false"
            conn.execute(sql.SQL(statement).format(sql.Identifier(name), sql.Identifier(template)))
        self._owned.add(name)
        return name

    def drop(self, name: str) -> None:
        if name not in self._owned:
            raise ValueError(f"rlscheck drops only the databases it created; {name!r} is not one of them")
        with self.server.admin() as conn:
            conn.execute(sql.SQL(DROP_DATABASE).format(sql.Identifier(name)))
        self._owned.discard(name)
        if isinstance(self.server, ExternalServer):
            self._reaper.forget_database(name)

    def worker_database(self) -> Database:
        if self._worker_db is None:
            template = self.template()
            name = self._create(f"rlscheck_{self.run_id}_{self.worker}", template=template, closed=True)
            self._worker_db = Database(self.server, name, self.options)
        return self._worker_db

    def worker_connection(self) -> psycopg.Connection[Any]:
        """The connection that transactional tests share (reopened if it broke). Once it is
        open the database refuses every other connection, superusers' too."""
        if self._worker_conn is None or self._worker_conn.closed or self._worker_conn.broken:
            database = self.worker_database()
            name = sql.Identifier(database.name)
            with self.server.admin() as admin:
                admin.execute(sql.SQL(ALLOW_CONNECTIONS).format(name, sql.SQL("true")))
                try:
                    self._worker_conn = database.connect(autocommit=True)
                finally:
                    admin.execute(sql.SQL(ALLOW_CONNECTIONS).format(name, sql.SQL("false")))
        return self._worker_conn

    def reset_worker_database(self) -> None:
        """A test committed on the shared database: clone it again from the template."""
        if self._worker_conn is not None:
            self._worker_conn.close()
            self._worker_conn = None
        if self._worker_db is not None:
            self._create(self._worker_db.name, template=self.template(), closed=True)

    def fresh_database(self) -> Database:
        template = self.template()
        self._fresh_count += 1
        name = self._create(f"rlscheck_{self.run_id}_{self.worker}_f{self._fresh_count}", template=template)
        return Database(self.server, name, self.options)

    # -- teardown -------------------------------------------------------------------

    def close(self) -> None:
        if self._worker_conn is not None:
            self._worker_conn.close()
            self._worker_conn = None
        server, self._server = self._server, None
        if server is not None:
            if isinstance(server, ExternalServer):
                for name in sorted(self._owned, key=lambda n: n.endswith("_template")):
                    try:
                        with server.admin() as conn:
                            conn.execute(sql.SQL(DROP_DATABASE).format(sql.Identifier(name)))
                    except psycopg.Error:
                        continue
                    self._reaper.forget_database(name)
                self._clean_cluster(server)
            server.stop()
        self._owned.clear()
        self._reaper.close()

    def _clean_cluster(self, server: ExternalServer) -> None:
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
