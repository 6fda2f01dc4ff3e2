"""The session's databases: one template with the migrations applied, one database per
worker cloned from it, and fresh clones for tests that must commit.

Built lazily on first use. :class:`RlsSession` is what the fixtures, the sweep and the
report use; the work is done by one module each:

- :mod:`.template`: the server for the sources, and the template built on it (shim,
  migrations, seed), and removing what that build added to an existing server's cluster;
- :mod:`.databases`: the databases cloned from the template, and dropping them (the janitor);
- :mod:`.handover`: under pytest-xdist the controller builds the server and the template
  once and hands their coordinates to the workers (:meth:`RlsSession.shared_info`).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from typing import Any

import psycopg

from .config import Settings
from .databases import Database, Janitor
from .errors import RlscheckError
from .extensions import ExtensionPlan
from .handover import HandedOver, shared_info
from .reaper import Reaper
from .server import ExternalServer, Server
from .template import CacheStatus, TemplateBuild, TemplateSource, connection_options

__all__ = ["Database", "RlsSession"]


class RlsSession:
    def __init__(self, settings: Settings, *, worker: str = "main", shared: Mapping[str, Any] | None = None) -> None:
        self.settings = settings
        self.worker = worker
        self._reaper = Reaper()
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._template: str | None = None
        self._error: RlscheckError | None = None
        self._cleared: int | None = None  # entries --rlscheck-cache-clear removed
        self._origin: TemplateSource
        if shared:
            handed = HandedOver(shared)
            self.run_id = handed.run_id
            self._origin = handed
        else:
            self.run_id = secrets.token_hex(4)
            self._origin = TemplateBuild(settings, self._reaper)
        self._janitor = Janitor(
            self._reaper,
            prefix=f"rlscheck_{self.run_id}",
            worker=worker,
            server=lambda: self.server,
            template=self._template_database,
        )

    # -- the server and the template ------------------------------------------------

    @property
    def parts(self) -> tuple[str, ...]:
        """The Supabase shim's parts in the template (known once it is built)."""
        return self._origin.parts

    @property
    def owner(self) -> str | None:
        """The role the tests' owner side acts as (known once the template is built)."""
        return self._origin.owner

    @property
    def options(self) -> str:
        return connection_options(self.parts, self._origin.owner)

    @property
    def planned(self) -> ExtensionPlan | None:
        """The server chosen for the sources and its stand-ins (None: not chosen here)."""
        return self._origin.planned

    @property
    def server_started(self) -> bool:
        """Whether this session has started (or connected to) a server yet."""
        return self._server is not None

    @property
    def server(self) -> Server:
        if self._server is None:
            self._server = self._origin.start_server()
        return self._server

    def template(self) -> str:
        """Name of the template database, built on first call (errors are cached)."""
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._template is None:
                try:
                    self._template = self._origin.build(lambda: self.server, self._janitor.create_template)
                except RlscheckError as exc:
                    self._error = exc
                    raise
        return self._template

    def _template_database(self) -> Database:
        name = self.template()
        return Database(self.server, name, self.options, self._origin.owner)

    def shared_info(self) -> dict[str, Any]:
        """What an xdist worker needs to use this session's server and template."""
        return shared_info(self)

    # -- for the report -------------------------------------------------------------

    def environment_lines(self) -> list[str]:
        """For the report header: the server chosen and why, the stand-ins it gets, and
        whether the template comes from the cache. Never raises (a broken file is reported
        where the build fails)."""
        lines = self._origin.header_lines()
        if self._cleared is not None:
            lines.append(f"template cache cleared ({self._cleared} entr{'y' if self._cleared == 1 else 'ies'} removed)")
        return lines

    @property
    def template_source(self) -> CacheStatus | None:
        """Where the template came from: the template cache, a build (None: not known yet)."""
        return self._origin.cache_status

    def clear_template_cache(self) -> int:
        """--rlscheck-cache-clear: remove the cached templates no run is using."""
        self._cleared = self._origin.clear_cache()
        return self._cleared

    def stand_in_lines(self) -> list[str]:
        """The stand-ins in use, one line each ("simulated: pg_net — ...")."""
        return self._origin.stand_in_lines()

    def environment(self) -> dict[str, Any]:
        """For the JSON report: the server and the stand-ins."""
        plan = self._origin.planned
        status = self.template_source
        return {
            "server": self._server.description if self._server is not None else None,
            "template": None if status is None else {
                "source": status.state,
                "key": status.key,
                "built_at": status.entry.built_at if status.entry is not None else None,
                "reason": status.reason or None,
            },
            "stand_ins": [{"extension": s.name, "version": s.version, "simulated": s.note} for s in plan.stood_in]
            if plan
            else [],
        }

    def lost_report(self) -> str:
        """After a broken connection: the state of the server and the end of its log."""
        return self._server.lost_report() if self._server is not None else ""

    # -- databases ------------------------------------------------------------------

    def worker_database(self) -> Database:
        return self._janitor.worker_database()

    def worker_connection(self) -> psycopg.Connection[Any]:
        """The connection that transactional tests share (reopened if it broke). Once it is
        open the database refuses every other connection, superusers' too."""
        return self._janitor.worker_connection()

    def reset_worker_database(self) -> None:
        """A test committed on the shared database: clone it again from the template."""
        self._janitor.reset_worker_database()

    def fresh_database(self) -> Database:
        return self._janitor.fresh_database()

    def sweep_database(self) -> Database:
        """The sweep's own clone of the template, for the rows it synthesizes (cloned again on
        every call); the project's own tests never see it."""
        return self._janitor.own_database("sweep")

    def drop(self, name: str) -> None:
        self._janitor.drop(name)

    # -- teardown -------------------------------------------------------------------

    def close(self) -> None:
        self._janitor.close_connection()
        server, self._server = self._server, None
        if server is not None:
            if isinstance(server, ExternalServer):
                self._janitor.drop_all(server)
                self._origin.clean_up(server)  # the roles the build added
            server.stop()
        self._janitor.forget()
        self._reaper.close()
