"""What a statement changed, per tenant and per user, across tables.

A :class:`Scope` lists the tables to watch (the tables of the exposed schemas, plus
``auth.users`` and ``storage.objects`` when the database has them) and, for each, whose a
row is: its tenant (the tenant key of :func:`~pytest_rlscheck.tenancy.find_tenant_key`), its
owning user (a per-user table's owner column; ``auth.users`` by ``id``, ``storage.objects``
by ``owner``), or nobody's (a table without either: counted as a whole).

A :class:`Snapshot` holds, per table and per owner, a row count and a checksum of the row
versions (the sum of ``hashtext(tableoid || ctid)``: an UPDATE gives a row a new ctid, so a
changed row changes the checksum even when the count stays). It is taken with ONE query
(:meth:`Scope.query`, a ``UNION ALL`` of one grouped scan per table), with the owner's
rights. :func:`diff` says which tables changed for whom.

The checks use it inside a savepoint that is rolled back, in one round trip::

    scope = Scope.of(rls, ctx.catalog, ctx.schemas, ctx.config)
    results = rolled_back(conn, [OWNER_SQL, scope.query(conn), identity, statement,
                                 OWNER_SQL, scope.query(conn)])
    changes = diff(scope.read(results[1].rows), scope.read(results[-1].rows))

Nothing is committed, and no row travels to Python: one line per table and owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from .catalog import Catalog, Relation
from .config import SweepConfig
from .tenancy import find_tenant_key

if TYPE_CHECKING:
    from .protocol import RlsProtocol

__all__ = ["PLATFORM_TABLES", "Change", "Scope", "Snapshot", "Watched", "diff"]

TENANT = "tenant"
USER = "user"

#: Supabase's own tables that hold what belongs to a user, and the expression that says whose
#: a row is: watched when the database has them.
PLATFORM_TABLES: Mapping[str, str] = {
    "auth.users": "t.id",
    "storage.objects": "coalesce(t.owner::text, t.owner_id)",
}
PLATFORM_SQL = "select n, to_regclass(n) is not null from unnest(%s::text[]) n"
#: One table's share of a snapshot: per owner, rows and the checksum of their versions.
_PART = (
    "select {index}, ({owner})::text, count(*), "
    "coalesce(sum(hashtext(t.tableoid::text || ':' || t.ctid::text)::bigint), 0)::bigint from {table} t group by 2"
)


@dataclass(frozen=True)
class Watched:
    """A table of the scope, and whose its rows are: ``kind`` is ``"tenant"``, ``"user"`` or
    ``None`` (nobody's: the table is counted as a whole); ``owner`` the SQL over the row
    ``t`` that says who."""

    table: str  # schema.name
    ident: sql.Composable
    kind: str | None
    owner: sql.Composable


@dataclass(frozen=True)
class Snapshot:
    """Per (table, owner): (rows, checksum). ``owner`` is None for rows of nobody (or of a
    table without an owner)."""

    counts: Mapping[tuple[str, str | None], tuple[int, int]]
    kinds: Mapping[str, str | None] = field(default_factory=dict)

    def rows(self, table: str, owner: str | None = None) -> int:
        """Rows of ``table`` that belong to ``owner`` (every row, when owner is None and
        the table has no owner)."""
        return self.counts.get((table, owner), (0, 0))[0]

    def owners(self, table: str) -> dict[str | None, int]:
        return {o: n for (t, o), (n, _) in self.counts.items() if t == table}


@dataclass(frozen=True)
class Change:
    """One table's rows of one owner, before and after."""

    table: str
    kind: str | None  # "tenant", "user" or None (see Watched)
    owner: str | None
    before: int
    after: int

    @property
    def added(self) -> int:
        return max(0, self.after - self.before)

    @property
    def removed(self) -> int:
        return max(0, self.before - self.after)

    @property
    def rewritten(self) -> bool:
        """The count stayed and the rows changed (updated, or as many deleted as added)."""
        return self.after == self.before

    def belongs_to(self, *, tenant: str | None = None, user: str | None = None) -> bool:
        """The changed rows are ``tenant``'s (by a tenant key) or ``user``'s (by an owner column)."""
        if self.owner is None:
            return False
        return (self.kind == TENANT and tenant is not None and self.owner == str(tenant)) or (
            self.kind == USER and user is not None and self.owner == str(user)
        )

    def describe(self) -> str:
        whose = (
            f"of tenant {self.owner}" if self.kind == TENANT and self.owner is not None
            else f"of user {self.owner}" if self.kind == USER and self.owner is not None
            else "without an owner" if self.kind is not None
            else ""
        )
        if self.rewritten:
            what = f"row(s) {whose} updated (the count stays {self.before})".replace("  ", " ")
        elif self.added:
            what = f"{self.added} row(s) {whose} added".replace("  ", " ")
        else:
            what = f"{self.removed} row(s) {whose} removed".replace("  ", " ")
        return f"{self.table}: {what.strip()}"


def diff(before: Snapshot, after: Snapshot) -> list[Change]:
    """The (table, owner) pairs whose rows changed, in table order."""
    changes = []
    for key in sorted(set(before.counts) | set(after.counts), key=lambda k: (k[0], k[1] or "")):
        old, new = before.counts.get(key, (0, 0)), after.counts.get(key, (0, 0))
        if old != new:
            table, owner = key
            changes.append(Change(table, after.kinds.get(table, before.kinds.get(table)), owner, old[0], new[0]))
    return changes


@dataclass(frozen=True)
class Scope:
    """The tables a snapshot covers, and how to take one."""

    tables: tuple[Watched, ...]

    @classmethod
    def of(
        cls,
        rls: RlsProtocol | psycopg.Connection[Any] | None,
        catalog: Catalog,
        schemas: Sequence[str],
        config: SweepConfig | None = None,
        *,
        platform: Iterable[str] = tuple(PLATFORM_TABLES),
    ) -> Scope:
        """The tables of ``schemas`` in ``catalog`` (tables and partitioned tables), each by
        its tenant key or owner column, plus those of ``platform`` that exist (one query;
        none with ``rls=None``)."""
        watched = [_watched(rel, config) for rel in catalog.relations if rel.kind in ("r", "p") and rel.schema in schemas]
        names = [n for n in platform if n in PLATFORM_TABLES and n not in {w.table for w in watched}]
        if names and rls is not None:
            conn = rls if isinstance(rls, psycopg.Connection) else rls.connection
            present = _platform(rls, conn, names)
            watched += [
                Watched(n, sql.Identifier(*n.split(".")), USER, sql.SQL(PLATFORM_TABLES[n])) for n in names if present.get(n)
            ]
        return cls(tuple(watched))

    def query(self, conn: psycopg.Connection[Any] | None = None) -> str:
        """The one statement that takes a snapshot (to run with the owner's rights)."""
        if not self.tables:
            return "select null::int, null::text, 0::bigint, 0::bigint where false"
        parts = [
            sql.SQL(_PART).format(index=sql.Literal(i), owner=w.owner, table=w.ident) for i, w in enumerate(self.tables)
        ]
        return sql.SQL("\nunion all\n").join(parts).as_string(conn)

    def read(self, rows: Iterable[Sequence[Any]] | None) -> Snapshot:
        """A snapshot from the rows of :meth:`query`."""
        counts: dict[tuple[str, str | None], tuple[int, int]] = {}
        for index, owner, count, checksum in rows or ():
            watched = self.tables[index]
            owner = owner if watched.kind is not None else None
            counts[(watched.table, owner)] = (int(count), int(checksum))
        return Snapshot(counts, {w.table: w.kind for w in self.tables})

    def snapshot(self, rls: RlsProtocol) -> Snapshot:
        """A snapshot now, with the owner's rights (whoever ``rls`` acts as)."""
        return self.read(rls.owner_fetchall(self.query(rls.connection)))

    def kind(self, table: str) -> str | None:
        return next((w.kind for w in self.tables if w.table == table), None)


def _watched(rel: Relation, config: SweepConfig | None) -> Watched:
    key = find_tenant_key(rel, config)
    if key is None:
        return Watched(rel.qualified, rel.ident, None, sql.SQL("null"))
    return Watched(rel.qualified, rel.ident, USER if key.per_user else TENANT, key.sql())


def _platform(rls: Any, conn: psycopg.Connection[Any], names: list[str]) -> dict[str, bool]:
    if isinstance(rls, psycopg.Connection):
        return dict(conn.execute(PLATFORM_SQL, [names]).fetchall())
    return dict(rls.owner_fetchall(PLATFORM_SQL, [names]))
