"""What a run leaves in an existing server's cluster-wide catalogs, and taking it away again.

Databases are the run's own, but roles and role memberships belong to the whole cluster:
the Supabase shim creates the API roles where they are missing and grants them to the
connecting role, and migrations create roles of their own. On a server given by a DSN they
would outlive the run, and the next run would fail on ``role "…" already exists``.

The template build runs under an advisory lock in the maintenance database, so that the
roles and memberships that appear between a snapshot before it and one after it are this
run's. Roles created are marked with a comment. Every run keeps a connection open under one
application_name for its lifetime (visible in pg_stat_activity from any database), and the
last run to end on a server drops every marked role and revokes the memberships it granted.
A run that ends while others are still active leaves the roles to the last one (they may be
using them); memberships it granted between roles that existed before it are kept then.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import namedtuple_row

__all__ = ["ClusterState", "ROLE_MARK", "RunLocks", "clean_up", "snapshot"]

#: Comment on every role a run created: what a later run may drop.
ROLE_MARK = "pytest-rlscheck: created by a test run; dropped when the last run on this server ends"
LOCK_SPACE = 0x726C73  # "rls": the first key of the plugin's advisory locks
BUILD_LOCK = 1  # held while a run builds its template (roles appear then)

ROLES_SQL = "select rolname from pg_catalog.pg_roles"
MEMBERSHIPS_SQL = (
    "select distinct r.rolname as role, m.rolname as member from pg_catalog.pg_auth_members a"
    " join pg_catalog.pg_roles r on r.oid = a.roleid join pg_catalog.pg_roles m on m.oid = a.member"
)
MARKED_SQL = (
    "select r.rolname from pg_catalog.pg_roles r"
    " where pg_catalog.shobj_description(r.oid, 'pg_authid') = %s order by 1"
)
#: Every run keeps one connection open under this name, whatever database its DSN names.
RUN_APPLICATION = "pytest-rlscheck run"
OTHER_RUNS_SQL = (
    "select count(*) from pg_catalog.pg_stat_activity where application_name = %(name)s"
    " and pid <> pg_catalog.pg_backend_pid()"
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
    with conn.cursor(row_factory=namedtuple_row) as cur:
        roles = frozenset(row.rolname for row in cur.execute(ROLES_SQL))
        memberships = frozenset((row.role, row.member) for row in cur.execute(MEMBERSHIPS_SQL))
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
    """The run's connection to the maintenance database: it holds the build lock while the
    template is built, and says by its application_name, for the run's lifetime, that the
    run is active (seen in pg_stat_activity from any database of the server)."""

    def __init__(self, conninfo: str) -> None:
        self.conn = psycopg.connect(conninfo, autocommit=True, application_name=RUN_APPLICATION)

    @contextmanager
    def building(self) -> Iterator[None]:
        self.conn.execute("select pg_catalog.pg_advisory_lock(%s, %s)", [LOCK_SPACE, BUILD_LOCK])
        try:
            yield
        finally:
            self.conn.execute("select pg_catalog.pg_advisory_unlock(%s, %s)", [LOCK_SPACE, BUILD_LOCK])

    def close(self) -> None:
        self.conn.close()


def _last_run(conn: psycopg.Connection[Any], wait: float = 2.0) -> bool:
    """No other run holds its run lock. A run that was just killed still holds it until the
    server notices its connection closed (a moment): look again for ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        row = conn.execute(OTHER_RUNS_SQL, {"name": RUN_APPLICATION}).fetchone()
        if row is not None and row[0] == 0:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def clean_up(
    conninfo: str,
    created: ClusterState | None,
    *,
    own_roles: Sequence[str] = (),
    before: ClusterState | None = None,
) -> list[str]:
    """Drop the marked roles and revoke ``created.memberships``, unless another run is still
    active; ``own_roles`` (created by this run but not marked) are dropped in any case. A run
    killed during its build knows only ``before``: what was added since is this run's, and is
    marked for the last run to drop. Returns what could not be removed, as notes."""
    notes: list[str] = []
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        conn.execute("select pg_catalog.pg_advisory_lock(%s, %s)", [LOCK_SPACE, BUILD_LOCK])
        if created is None:
            if before is None:
                return notes
            created = snapshot(conn).added_since(before)
            own_roles = [*own_roles, *mark(conn, sorted(created.roles))]
        last = _last_run(conn)
        roles = list(own_roles)
        if last:
            roles += [name for (name,) in conn.execute(MARKED_SQL, [ROLE_MARK]) if name not in roles]
            for role, member in sorted(created.memberships):
                try:
                    conn.execute(sql.SQL("revoke {} from {}").format(sql.Identifier(role), sql.Identifier(member)))
                except psycopg.Error as exc:
                    notes.append(f"membership of {member} in {role} was left: {exc.diag.message_primary}")
        notes += _drop_roles(conn, roles)
    return notes


def _drop_roles(conn: psycopg.Connection[Any], roles: Sequence[str]) -> list[str]:
    """Drop ``roles``, again while any drop succeeds (a role may hold grants another needs)."""
    left = list(roles)
    errors: dict[str, str] = {}
    while left:
        failed = []
        for role in left:
            try:
                conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))
            except psycopg.Error as exc:
                failed.append(role)
                errors[role] = exc.diag.message_primary or str(exc)
        if len(failed) == len(left):
            break
        left = failed
    return [f"role {role} was left: {errors[role]}" for role in left]
