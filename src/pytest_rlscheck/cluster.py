"""What a run leaves in an existing server's cluster-wide catalogs, and taking it away again.

Databases are the run's own, but roles and role memberships belong to the whole cluster:
the Supabase shim creates the API roles where they are missing and grants them to the
connecting role, and migrations create roles of their own. On a server given by a DSN they
would outlive the run, and the next run would fail on ``role "…" already exists``.

The template build runs under a cluster-wide advisory lock (in the maintenance database),
so that the roles and memberships that appear between a snapshot before it and one after it
are this run's. Roles created are marked with a comment; every run holds a shared "run"
lock for its lifetime, and the last run to end on a server drops every marked role and
revokes the memberships it granted. A run that ends while others are still active leaves
them to the last one (they may be using them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["ClusterState", "ROLE_MARK", "RunLocks", "clean_up", "snapshot"]

#: Comment on every role a run created: what a later run may drop.
ROLE_MARK = "pytest-rlscheck: created by a test run; dropped when the last run on this server ends"
LOCK_SPACE = 0x726C73  # "rls": the first key of the plugin's advisory locks
BUILD_LOCK = 1  # held while a run builds its template (roles appear then)
RUN_LOCK = 2  # held, shared, by every run for its lifetime

ROLES_SQL = "select rolname from pg_catalog.pg_roles"
MEMBERSHIPS_SQL = (
    "select distinct r.rolname, m.rolname from pg_catalog.pg_auth_members a"
    " join pg_catalog.pg_roles r on r.oid = a.roleid join pg_catalog.pg_roles m on m.oid = a.member"
)
MARKED_SQL = (
    "select r.rolname from pg_catalog.pg_roles r"
    " where pg_catalog.shobj_description(r.oid, 'pg_authid') = %s order by 1"
)
OTHER_RUNS_SQL = (
    "select count(*) from pg_catalog.pg_locks where locktype = 'advisory' and granted"
    " and classid = %(space)s and objid = %(run)s and objsubid = 2 and pid <> pg_catalog.pg_backend_pid()"
    " and database = (select oid from pg_catalog.pg_database where datname = pg_catalog.current_database())"
)


@dataclass(frozen=True)
class ClusterState:
    """Role names and (role, member) memberships at one moment."""

    roles: frozenset[str]
    memberships: frozenset[tuple[str, str]]

    def added_since(self, before: ClusterState) -> ClusterState:
        """What appeared since ``before``; memberships of new roles go with the role."""
        roles = self.roles - before.roles
        memberships = {(r, m) for r, m in self.memberships - before.memberships if r not in roles and m not in roles}
        return ClusterState(frozenset(roles), frozenset(memberships))


def snapshot(conn: psycopg.Connection[Any]) -> ClusterState:
    roles = frozenset(r[0] for r in conn.execute(ROLES_SQL))
    memberships = frozenset((r[0], r[1]) for r in conn.execute(MEMBERSHIPS_SQL))
    return ClusterState(roles, memberships)


def mark(conn: psycopg.Connection[Any], roles: Sequence[str]) -> list[str]:
    """Comment the roles this run created (unless the migrations commented them); the roles
    that could not be marked (no right to) are returned: only this run will drop them."""
    unmarked = []
    for role in roles:
        try:
            conn.execute(
                sql.SQL("do $m$ begin if pg_catalog.shobj_description((select oid from pg_catalog.pg_roles where "
                        "rolname = {name}), 'pg_authid') is null then comment on role {role} is {mark}; end if; end "
                        "$m$").format(name=sql.Literal(role), role=sql.Identifier(role), mark=sql.Literal(ROLE_MARK))
            )
        except psycopg.Error:
            unmarked.append(role)
    return unmarked


class RunLocks:
    """The run's connection to the maintenance database that holds its advisory locks."""

    def __init__(self, conninfo: str) -> None:
        self.conn = psycopg.connect(conninfo, autocommit=True)
        self.conn.execute("select pg_catalog.pg_advisory_lock_shared(%s, %s)", [LOCK_SPACE, RUN_LOCK])

    @contextmanager
    def building(self) -> Iterator[None]:
        self.conn.execute("select pg_catalog.pg_advisory_lock(%s, %s)", [LOCK_SPACE, BUILD_LOCK])
        try:
            yield
        finally:
            self.conn.execute("select pg_catalog.pg_advisory_unlock(%s, %s)", [LOCK_SPACE, BUILD_LOCK])

    def close(self) -> None:
        try:  # released before the clean-up counts the runs still active
            self.conn.execute("select pg_catalog.pg_advisory_unlock_shared(%s, %s)", [LOCK_SPACE, RUN_LOCK])
        except psycopg.Error:
            pass
        self.conn.close()


def _last_run(conn: psycopg.Connection[Any], wait: float = 2.0) -> bool:
    """No other run holds its run lock. A run that was just killed still holds it until the
    server notices its connection closed (a moment): look again for ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        row = conn.execute(OTHER_RUNS_SQL, {"space": LOCK_SPACE, "run": RUN_LOCK}).fetchone()
        if row is not None and row[0] == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def clean_up(conninfo: str, created: ClusterState, *, own_roles: Sequence[str] = ()) -> list[str]:
    """Drop the marked roles and revoke ``created.memberships``, unless another run is still
    active; ``own_roles`` (created by this run but not marked) are dropped in any case. Returns
    what could not be removed, as notes."""
    notes: list[str] = []
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        conn.execute("select pg_catalog.pg_advisory_lock(%s, %s)", [LOCK_SPACE, BUILD_LOCK])
        last = _last_run(conn)
        roles = list(own_roles)
        if last:
            roles += [r[0] for r in conn.execute(MARKED_SQL, [ROLE_MARK]) if r[0] not in roles]
            for role, member in sorted(created.memberships):
                try:
                    conn.execute(sql.SQL("revoke {} from {}").format(sql.Identifier(role), sql.Identifier(member)))
                except psycopg.Error as exc:
                    notes.append(f"membership of {member} in {role} was left: {exc.diag.message_primary}")
        for role in roles:
            try:
                conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))
            except psycopg.Error as exc:
                notes.append(f"role {role} was left: {exc.diag.message_primary}")
    return notes
