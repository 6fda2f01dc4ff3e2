"""The janitor: the databases cloned from the template — the one each worker's
transactional tests share, a fresh one per test that must commit — cloned again when a
test committed on the shared one, and dropped at the end.

It creates the template database too (from ``template1``), so that everything the session
created on a server is dropped the same way. What goes into the template is
:mod:`.template`'s job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .reaper import Reaper
from .server import ExternalServer, LocalServer, Server

__all__ = ["Database", "Janitor"]

CREATE_DATABASE = "CREATE DATABASE {} TEMPLATE {}"
#: On the throw-away server (fsync off), copying files is twice as fast as WAL_LOG.
CREATE_DATABASE_FILE_COPY = CREATE_DATABASE + " STRATEGY FILE_COPY"
DROP_DATABASE = "DROP DATABASE IF EXISTS {} WITH (FORCE)"
#: The shared database takes no connection but the one its tests run on: a second one
#: would commit, and what it committed would be seen by every later test.
ALLOW_CONNECTIONS = "ALTER DATABASE {} ALLOW_CONNECTIONS {}"
#: A clone is the creator's (the superuser's): it goes to the owner role, as Supabase's
#: databases are ``postgres``'s (and with them the ``public`` schema, pg_database_owner's).
GRANT_DATABASE = "ALTER DATABASE {} OWNER TO {}"


@dataclass(frozen=True)
class Database:
    """A database of this session: how to connect to it."""

    server: Server
    name: str
    options: str  # libpq ``options`` (the Supabase search_path, the owner role), may be empty
    #: The role the connection acts as (``-c role=postgres`` in ``options``), which every
    #: clone grants its database's rights to; None: the connection's own.
    owner: str | None = None

    @property
    def dsn(self) -> str:
        """The one connection string for this database: :meth:`connect` opens it too, so
        ``psycopg.connect(db.dsn)`` connects as ``db.connect()`` does. Our ``options`` come
        after any the server's DSN carries (``-c`` settings: the last one wins)."""
        params = conninfo_to_dict(self.server.conninfo(self.name))
        if self.options:
            existing = params.get("options")
            params["options"] = f"{existing} {self.options}" if existing else self.options
        return make_conninfo(**params)

    def connect(self, *, autocommit: bool = True, **kwargs: Any) -> psycopg.Connection[Any]:
        """A new connection to :attr:`dsn`; ``kwargs`` are libpq parameters over it
        (``options=...`` replaces ours) or psycopg's own (``row_factory``...)."""
        return psycopg.connect(self.dsn, autocommit=autocommit, **kwargs)


class Janitor:
    """Creates this session's databases on its server, and drops them again.

    ``server`` and ``template`` are the session's (called when first needed: the template
    is built on first use). The databases are named ``<prefix>_template``,
    ``<prefix>_<worker>`` (the shared one) and ``<prefix>_<worker>_f<n>`` (fresh ones)."""

    def __init__(
        self,
        reaper: Reaper,
        *,
        prefix: str,
        worker: str,
        server: Callable[[], Server],
        template: Callable[[], Database],
    ) -> None:
        self._reaper = reaper
        self._prefix = prefix
        self._worker = worker
        self._server = server
        self._template = template
        self._owned: set[str] = set()
        self._worker_db: Database | None = None
        self._worker_conn: psycopg.Connection[Any] | None = None
        self._fresh_count = 0

    def create_template(self) -> str:
        """An empty database for the template (a copy of ``template1``), to be built."""
        return self.create(f"{self._prefix}_template", template="template1")

    def create(self, name: str, *, template: str, closed: bool = False, owner: str | None = None) -> str:
        """Clone ``template`` as ``name``; ``closed``: taking no connection until
        :meth:`worker_connection` opens the one it allows; ``owner``: the role granted the
        new database's rights."""
        server = self._server()
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
            if owner:
                conn.execute(sql.SQL(GRANT_DATABASE).format(sql.Identifier(name), sql.Identifier(owner)))
        self._owned.add(name)
        return name

    def drop(self, name: str) -> None:
        if name not in self._owned:
            raise ValueError(f"rlscheck drops only the databases it created; {name!r} is not one of them")
        server = self._server()
        with server.admin() as conn:
            conn.execute(sql.SQL(DROP_DATABASE).format(sql.Identifier(name)))
        self._owned.discard(name)
        if isinstance(server, ExternalServer):
            self._reaper.forget_database(name)

    def worker_database(self) -> Database:
        if self._worker_db is None:
            template = self._template()
            name = self.create(
                f"{self._prefix}_{self._worker}", template=template.name, closed=True, owner=template.owner
            )
            self._worker_db = Database(template.server, name, template.options, template.owner)
        return self._worker_db

    def worker_connection(self) -> psycopg.Connection[Any]:
        """The connection that transactional tests share (reopened if it broke). Once it is
        open the database refuses every other connection, superusers' too."""
        if self._worker_conn is None or self._worker_conn.closed or self._worker_conn.broken:
            database = self.worker_database()
            name = sql.Identifier(database.name)
            with self._server().admin() as admin:
                admin.execute(sql.SQL(ALLOW_CONNECTIONS).format(name, sql.SQL("true")))
                try:
                    self._worker_conn = database.connect(autocommit=True)
                finally:
                    admin.execute(sql.SQL(ALLOW_CONNECTIONS).format(name, sql.SQL("false")))
        return self._worker_conn

    def reset_worker_database(self) -> None:
        """A test committed on the shared database: clone it again from the template."""
        self.close_connection()
        if self._worker_db is not None:
            template = self._template()
            self.create(self._worker_db.name, template=template.name, closed=True, owner=template.owner)

    def own_database(self, suffix: str) -> Database:
        """A clone of the template for one part of the run (the sweep's synthesized rows):
        ``<prefix>_<worker>_<suffix>``, cloned again on every call."""
        template = self._template()
        name = self.create(f"{self._prefix}_{self._worker}_{suffix}", template=template.name, owner=template.owner)
        return Database(template.server, name, template.options, template.owner)

    def fresh_database(self) -> Database:
        template = self._template()
        self._fresh_count += 1
        name = self.create(
            f"{self._prefix}_{self._worker}_f{self._fresh_count}", template=template.name, owner=template.owner
        )
        return Database(template.server, name, template.options, template.owner)

    # -- teardown -------------------------------------------------------------------

    def close_connection(self) -> None:
        if self._worker_conn is not None:
            self._worker_conn.close()
            self._worker_conn = None

    def drop_all(self, server: Server) -> None:
        """Drop every database of ours, the template last (on an existing server, one that
        cannot be dropped now is left to the reaper)."""
        for name in sorted(self._owned, key=lambda n: n.endswith("_template")):
            if self._drop_now(server, name) and isinstance(server, ExternalServer):
                self._reaper.forget_database(name)

    @staticmethod
    def _drop_now(server: Server, name: str, attempts: int = 5) -> bool:
        """DROP … WITH (FORCE), tried again for a moment: a backend that is still exiting
        (a connection just closed, an autovacuum worker) can make one attempt fail, and a
        database left now keeps the roles its grants name from being dropped after it."""
        for attempt in range(attempts):
            try:
                with server.admin() as conn:
                    conn.execute(sql.SQL(DROP_DATABASE).format(sql.Identifier(name)))
                return True
            except psycopg.Error:
                if attempt + 1 < attempts:
                    time.sleep(0.2)
        return False

    def forget(self) -> None:
        """The server is gone (stopped, or its databases dropped)."""
        self._owned.clear()
