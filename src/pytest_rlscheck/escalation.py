"""Escalation through the authorization tables, measured: can a user join another tenant,
or promote themselves, by writing their own id into a membership table?

For a membership table (:mod:`pytest_rlscheck.authorization`) and two principals of
different tenants, acting as the first:

* join: insert a membership of the user in the other tenant (once per value a role column
  allows), and move an own membership there (``update ... set tenant = theirs``);
* promote: set each role column of the user's own memberships to each other allowed value.

Each write runs in a savepoint that is rolled back, followed in the same savepoint by the
reads of every table whose policies consult the membership table (rows the user sees, not
counting the user's own memberships) and, for a promotion, the writes (rows an UPDATE or a
DELETE of the user would reach). Compared with the same counts without the write, more is a
gain: the statement that did it is reported with what it gained. A write PostgreSQL refuses
(RLS, privileges, a constraint) gains nothing.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from .authorization import AuthorizationTable
from .catalog import Relation
from .impersonation import Principal
from .scratch import OWNER_SQL, identity_sql, rolled_back
from .tenancy import updatable_column

if TYPE_CHECKING:
    from .protocol import RlsProtocol as Rls

__all__ = ["Attempt", "Gain", "escalation_attempts", "shown"]

#: The labels of the enum columns of one table (their allowed values), in one query.
ENUM_COLUMNS_SQL = """
select a.attname, array(select e.enumlabel::text from pg_enum e where e.enumtypid = t.oid order by e.enumsortorder)
from pg_attribute a join pg_type t on t.oid = a.atttypid
where a.attrelid = %s and a.attnum > 0 and not a.attisdropped and t.typtype = 'e'
"""
#: One row of the table whose ``column`` holds ``value`` (the user's own, a membership of theirs).
ROW_SQL = "select to_jsonb(t) from {rel} t where {column}::text = %(value)s limit 1"


@dataclass(frozen=True)
class Gain:
    table: str
    #: "select", "update" or "delete": the rows the user reaches with it; "select theirs": the
    #: other tenant's rows it sees (by the tenant column, where the table has one)
    operation: str
    before: int
    after: int

    def __str__(self) -> str:
        if self.operation == "select theirs":
            return f"sees {self.after:,} row(s) of {self.table} of the other tenant instead of {self.before:,}"
        verb = {"select": "sees", "update": "can update", "delete": "can delete"}[self.operation]
        return f"{verb} {self.after:,} row(s) of {self.table} instead of {self.before:,}"


@dataclass(frozen=True)
class Attempt:
    """One write into the membership table, as the user: what PostgreSQL did with it and
    what the user reached afterwards that they did not before."""

    command: str  # INSERT (a membership in another tenant) or UPDATE (an own membership changed)
    kind: str  # "join" (insert), "move" (an own membership to another tenant), "promote" (a role column)
    statement: str  # as run, identifiers quoted
    outcome: str
    gains: tuple[Gain, ...] = ()
    #: what the user's own membership was set to first, by the owner ("role = 'member'"): a
    #: member who starts lower than the synthesized one
    start: str = ""


def _text(value: Any) -> str | None:
    """A value of ``to_jsonb(row)`` as the text PostgreSQL reads for the column's type."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


class _Escalation:
    def __init__(self, rls: Rls, table: AuthorizationTable, user: Principal, other: Principal) -> None:
        self.rls = rls
        self.conn = rls.connection
        self.table = table
        self.rel = table.relation
        self.me = str(user.sub)
        self.mine = str(user.tenant)
        self.theirs = str(other.tenant)
        identity = rls.identity_for(user)
        assert identity is not None
        self.role = identity.role
        self.identity = identity_sql(self.conn, identity, rls.settings_in_effect())
        self.readable = [d for d in table.dependents if d.granted(self.role, "SELECT")]

    # -- what the user reaches --------------------------------------------------------

    def _not_own(self, rel: Relation) -> sql.Composable:
        """The rows of ``rel`` that count: all of them, but on the membership table itself the
        user's own memberships (the row just written is no gain)."""
        if rel.oid != self.rel.oid:
            return sql.SQL("true")
        return sql.SQL("{}::text is distinct from {}").format(
            sql.Identifier("t", self.table.user_column), sql.Literal(self.me)
        )

    def _counted(self) -> list[tuple[Relation, str, sql.Composable]]:
        """What is counted per readable table: its rows (but the user's own memberships), and,
        where it has the membership table's tenant column, the other tenant's rows — a move of
        one's membership trades one's own rows for theirs, which the first count cannot tell."""
        column = self.table.tenant_column
        out: list[tuple[Relation, str, sql.Composable]] = []
        for d in self.readable:
            out.append((d, "select", sql.SQL("(select count(*) from {} t where {})").format(d.ident, self._not_own(d))))
            if d.column(column) is not None:
                out.append((d, "select theirs", sql.SQL("(select count(*) from {} t where t.{}::text = {} and {})").format(
                    d.ident, sql.Identifier(column), sql.Literal(self.theirs), self._not_own(d))))
        return out

    def _reads(self) -> str:
        counts = sql.SQL(", ").join(query for _, _, query in self._counted())
        return sql.SQL("select {}").format(counts).as_string(self.conn)

    def _writes(self) -> list[tuple[Relation, str, str]]:
        out = []
        for d in self.table.dependents:
            if d.granted(self.role, "UPDATE"):
                column = sql.Identifier(updatable_column(d))
                out.append((d, "update", sql.SQL("update {} t set {} = t.{} where {}").format(
                    d.ident, column, column, self._not_own(d)).as_string(self.conn)))
            if d.granted(self.role, "DELETE"):
                out.append((d, "delete", sql.SQL("delete from {} t where {}").format(d.ident, self._not_own(d)).as_string(self.conn)))
        return out

    def _read_each(self, head: list[str]) -> dict[tuple[str, str], int]:
        """The rows of each readable table after ``head``, one table per round trip: a read
        that fails (a policy function raising) is left out, not blamed on the write."""
        out = {}
        for d, op, query in self._counted():
            statement = sql.SQL("select {}").format(query).as_string(self.conn)
            try:
                rows = rolled_back(self.conn, [*head, statement])[-1].rows
            except psycopg.Error:
                continue
            out[(d.qualified, op)] = rows[0][0]  # type: ignore[index]
        return out

    def reach(self, write: str | None, *, reads: bool = True, writes: bool = False,
              setup: Sequence[str] = ()) -> tuple[int, dict[tuple[str, str], int]]:
        """The rows ``write`` changed (None: nothing written) and the rows reached after it, per
        (table, operation); raises the write's error when PostgreSQL refuses it. The reads and
        the writes measured that fail are left out. ``setup``: the owner's statements first."""
        head = [*setup, self.identity] + ([write] if write else [])
        at = len(setup) + 1  # the write's result
        reached: dict[tuple[str, str], int] = {}
        changed = 0
        if reads or write:
            measured = [self._reads()] if reads and self.readable else []
            try:  # one round trip: the write and every read after it
                results = rolled_back(self.conn, [*head, *measured])
            except psycopg.Error:
                if write and not measured:
                    raise  # the write alone failed: PostgreSQL refused it
                # the write, or one of the reads: the write alone says which (its error is
                # the refusal); then each read on its own, a failing one left out
                if write:
                    changed = rolled_back(self.conn, head)[at].rowcount
                reached.update(self._read_each(head))
            else:
                if write:
                    changed = results[at].rowcount
                if measured:
                    reached.update(((d.qualified, op), n)
                                   for (d, op, _), n in zip(self._counted(), results[-1].rows[0], strict=False))  # type: ignore[index]
        if writes and (changed or write is None):
            for d, op, statement in self._writes():
                try:
                    reached[(d.qualified, op)] = rolled_back(self.conn, [*head, statement])[-1].rowcount
                except psycopg.Error:
                    continue  # refused without the write too, or by a constraint: nothing measured
        return changed, reached

    # -- the writes ---------------------------------------------------------------------

    def _owner_row(self, column: str, value: str) -> dict[str, Any] | None:
        """A row whose ``column`` is ``value``, read with the owner's rights."""
        statement = sql.SQL(ROW_SQL).format(rel=self.rel.ident, column=sql.Identifier(column))
        with self.rls.as_owner(), self.rls.safely():
            row = self.conn.execute(statement, {"value": value}).fetchone()
        return row[0] if row else None

    def role_values(self) -> dict[str, tuple[str, ...]]:
        values = dict(self.table.role_columns)
        with self.rls.as_owner(), self.rls.safely():
            for column, labels in self.conn.execute(ENUM_COLUMNS_SQL, [self.rel.oid]).fetchall():
                if column not in (self.table.user_column, self.table.tenant_column):
                    values[column] = tuple(labels)
        return values

    def _insert(self, row: Mapping[str, Any]) -> str:
        return sql.SQL("insert into {} ({}) values ({})").format(
            self.rel.ident,
            sql.SQL(", ").join(map(sql.Identifier, row)),
            sql.SQL(", ").join(sql.Literal(_text(v)) for v in row.values()),
        ).as_string(self.conn)

    def demoted(self, column: str, value: Any) -> list[str]:
        """The owner's statements that give the user's own membership ``column`` = ``value``:
        a member who starts lower than the synthesized one (who holds the highest role)."""
        return [OWNER_SQL, sql.SQL("update {} set {} = {} where {}::text = {} and {}::text = {}").format(
            self.rel.ident, sql.Identifier(column), sql.Literal(_text(value)),
            sql.Identifier(self.table.user_column), sql.Literal(self.me),
            sql.Identifier(self.table.tenant_column), sql.Literal(self.mine),
        ).as_string(self.conn)]

    def own_value(self, column: str) -> str | None:
        own = self._owner_row(self.table.user_column, self.me)
        return _text(own.get(column)) if own else None

    def _update(self, column: str, value: Any) -> str:
        return sql.SQL("update {} set {} = {} where {} = {}").format(
            self.rel.ident, sql.Identifier(column), sql.Literal(_text(value)),
            sql.Identifier(self.table.user_column), sql.Literal(self.me),
        ).as_string(self.conn)

    def joins(self, roles: Mapping[str, Sequence[str]]) -> list[tuple[str, str, str]]:
        """INSERT statements: the user's membership in the other tenant, once per role value."""
        if not self.rel.granted(self.role, "INSERT"):
            return []
        sample = self._owner_row(self.table.tenant_column, self.theirs) or {}
        # the columns that must have a value: from a membership of theirs
        required = {
            c.name: sample.get(c.name) for c in self.rel.columns
            if c.not_null and not c.has_default and not c.generated and not c.identity and c.name in sample
        }
        base = {**required, self.table.user_column: self.me, self.table.tenant_column: self.theirs}
        rows = [{**base, column: value} for column, values in roles.items() for value in values] or [base]
        return [("INSERT", "join", self._insert(row)) for row in rows]

    def changes(self, roles: Mapping[str, Sequence[str]]) -> list[tuple[str, str, str]]:
        """UPDATE statements of the user's own memberships: to the other tenant, and each
        role column to each other value."""
        if not self.rel.granted(self.role, "UPDATE"):
            return []
        own = self._owner_row(self.table.user_column, self.me)
        if own is None:
            return []
        out = [("UPDATE", "move", self._update(self.table.tenant_column, self.theirs))]
        for column, values in roles.items():
            out += [("UPDATE", "promote", self._update(column, v)) for v in values if v != _text(own.get(column))]
        return out


def escalation_attempts(
    rls: Rls,
    table: AuthorizationTable,
    user: Principal,
    other: Principal,
    *,
    commands: Collection[str] = ("INSERT", "UPDATE"),
    exhaustive: bool = False,
) -> list[Attempt]:
    """The writes of :mod:`this module <pytest_rlscheck.escalation>` with ``commands``,
    acting as ``user`` (of another tenant than ``other``), with what each gained; unless
    ``exhaustive``, a command stops at its first write that gains (one proves the hole, and
    a promotion's writes are measured by running them). Nothing is left behind."""
    probe = _Escalation(rls, table, user, other)
    if not probe.rel.granted(probe.role, "INSERT") and not probe.rel.granted(probe.role, "UPDATE"):
        return []  # the user cannot write into it at all: no query needed
    roles = probe.role_values()
    statements = [s for s in probe.joins(roles) + probe.changes(roles) if s[0] in commands]
    if not statements:
        return []
    baseline: dict[str, dict[tuple[str, str], int]] = {}
    attempts = []
    done: set[str] = set()
    for command, kind, statement in statements:
        if command in done:
            continue
        try:  # the write, and the reads after it
            changed, after = probe.reach(statement)
        except psycopg.Error as exc:
            attempts.append(Attempt(command, kind, statement, f"refused: {exc.sqlstate}: {exc.diag.message_primary}"))
            continue
        if not changed:
            attempts.append(Attempt(command, kind, statement, "no row changed"))
            continue
        if "reads" not in baseline:
            baseline["reads"] = probe.reach(None)[1]
        before = dict(baseline["reads"])
        if command == "UPDATE":  # a promotion may grant writes, measured by running them (rolled back)
            if "writes" not in baseline:
                baseline["writes"] = probe.reach(None, reads=False, writes=True)[1]
            before.update(baseline["writes"])
            after.update(probe.reach(statement, reads=False, writes=True)[1])
        gains = tuple(
            Gain(name, op, before[(name, op)], n) for (name, op), n in after.items() if n > before.get((name, op), n)
        )
        attempts.append(Attempt(command, kind, statement, "done", gains))
        if gains and not exhaustive:
            done.add(command)
    if "UPDATE" in commands and probe.rel.granted(probe.role, "UPDATE") and not any(
            a.command == "UPDATE" and a.gains for a in attempts):
        attempts += _promotions_from_below(probe, roles, exhaustive=exhaustive)
    return attempts


def _promotions_from_below(probe: _Escalation, roles: Mapping[str, Sequence[str]], *, exhaustive: bool) -> list[Attempt]:
    """A promotion of a member who starts with a lower role: the user's own membership set (by
    the owner, rolled back) to each other value of a role column, then, as the user, to each
    value but that one. Synthesized members hold the highest role, so their own promotions
    reach nothing new; a real member starts lower."""
    attempts: list[Attempt] = []
    for column, values in roles.items():
        current = probe.own_value(column)
        for low in (v for v in values if v != current):
            setup = probe.demoted(column, low)
            try:
                before = {**probe.reach(None, setup=setup)[1], **probe.reach(None, reads=False, writes=True, setup=setup)[1]}
            except psycopg.Error:
                continue  # the owner could not set it (a trigger, a constraint): no such member
            for high in (v for v in values if v != low):
                statement = probe._update(column, high)
                start = f"{column} = {low!r}"
                try:
                    changed, after = probe.reach(statement, setup=setup)
                    after.update(probe.reach(statement, reads=False, writes=True, setup=setup)[1])
                except psycopg.Error as exc:
                    attempts.append(Attempt("UPDATE", "promote", statement, f"refused: {exc.sqlstate}: {exc.diag.message_primary}",
                                            start=start))
                    continue
                if not changed:
                    attempts.append(Attempt("UPDATE", "promote", statement, "no row changed", start=start))
                    continue
                gains = tuple(Gain(name, op, before[(name, op)], n) for (name, op), n in after.items()
                              if n > before.get((name, op), n))
                attempts.append(Attempt("UPDATE", "promote", statement, "done", gains, start=start))
                if gains and not exhaustive:
                    return attempts
    return attempts


def shown(statement: str) -> str:
    """A statement as a finding shows it: on one line."""
    return " ".join(statement.split())

