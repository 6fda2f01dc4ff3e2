"""Tenant isolation, proven by acting as a user and checking the effect as the owner.

For each operation the check runs in a savepoint that is rolled back: it counts the other
tenant's rows as the owner, tries the operation as the user, and counts again. An
operation is isolated when PostgreSQL refused it (RLS or privileges, SQLSTATE 42501) or
when it changed nothing of the other tenant. A constraint error (23xxx) is not isolation:
PostgreSQL checks RLS before constraints, so the policy let the row through.

No row travels to Python, whatever the table's size: the user's own statement names the
other tenant (``update t set c = c where <the row is theirs>``) and RLS narrows it, so the
attempt covers every row of theirs, whichever of them a policy admits. With a tenant column
the condition is on the column. With ``tenant_sql``, which may read parents the user cannot
see, it is on ``pg_temp.rlscheck_tenant(t)``: a SECURITY DEFINER function that evaluates
``tenant_sql`` with the owner's rights, created in the probe's savepoint (and gone with its
rollback), and called only for the rows the policies let through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from .catalog import Relation
from .errors import RlsAssertionError
from .impersonation import Identity, Principal
from .rows import base_row, insert_statement, sample_row, to_json
from .scratch import OWNER_SQL, bind, identity_sql, rolled_back
from .tenancy import (  # noqa: F401 - re-exported: the tenant model is public here too
    TENANT_COLUMN_GUESSES,
    TenantKey,
    configured_key,
    example_policy_condition,
    find_tenant_key,
    owner_column,
    tenant_key,
    updatable_column,
)

if TYPE_CHECKING:
    from .protocol import RlsProtocol as Rls

__all__ = [
    "ALL_OPS",
    "NothingToTest",
    "Outcome",
    "TenantKey",
    "assert_isolated",
    "assert_no_foreign_rows",
    "isolation_outcomes",
    "find_tenant_key",
    "tenant_key",
]

ALL_OPS = ("select", "insert", "update", "delete", "move")
#: A row's address: its table (a partition, for a partitioned table) and its version.
ADDRESS = sql.SQL("(t.tableoid::text || ':' || t.ctid::text)")
#: A row's tenant by ``tenant_sql``, with the owner's rights: a temporary function, created
#: inside the probe's savepoint, so that it goes with the rollback.
TENANT_FUNCTION = sql.Identifier("pg_temp", "rlscheck_tenant")


IsolationError = RlsAssertionError  # a tenant isolation check failed (or had nothing to test)


class NothingToTest(RlsAssertionError):
    """An isolation check found no rows to test on: an error for an assertion, a note for the sweep."""


@dataclass(frozen=True)
class Outcome:
    """One operation of an isolation check: isolated (True), a leak (False), or not
    provable either way (None), and what happened."""

    op: str
    isolated: bool | None
    detail: str

    @property
    def label(self) -> str:
        return {True: "ok  ", False: "LEAK", None: "??  "}[self.isolated]


def isolation_outcomes(
    rls: Rls, rel: Relation, key: TenantKey, user: Principal, other: Principal, ops: Sequence[str] = ALL_OPS
) -> tuple[list[Outcome], str]:
    """Run each operation of the isolation check; raise when there is nothing to test."""
    mine = _tenant_of(rls, rel, key, user)
    theirs = _tenant_of(rls, rel, key, other)
    if str(mine) == str(theirs):
        raise IsolationError(f"{user} and {other} are in the same tenant ({mine}) of {rel.qualified}: nothing to isolate")
    probe = _Probe(rls, rel, key, user, str(mine), str(theirs))
    if probe.other_rows() == 0:
        raise NothingToTest(
            f"{rel.qualified} has no rows of {other}'s tenant ({theirs}) by {key.describe()}: there is nothing to "
            "prove isolation on. Seed rows for both tenants (or create them in the test) first."
        )
    return [getattr(probe, op)() for op in ops], str(theirs)


def assert_isolated(
    rls: Rls,
    table: str,
    *,
    user: Principal,
    other: Principal,
    tenant_column: str | None = None,
    tenant_sql: str | None = None,
    ops: Sequence[str] = ALL_OPS,
) -> None:
    """Prove, acting as ``user``, that ``other``'s rows of ``table`` cannot be read, written
    into, updated, deleted, and that ``user`` cannot move an own row into ``other``'s tenant."""
    unknown = set(ops) - set(ALL_OPS)
    if unknown:
        raise ValueError(f"unknown ops {sorted(unknown)}; choose from {ALL_OPS}")
    rel = rls.relation(table)
    key = tenant_key(rel, tenant_column, tenant_sql, rls.config)
    outcomes, theirs = isolation_outcomes(rls, rel, key, user, other, ops)
    leaks = [o for o in outcomes if o.isolated is False]
    unproven = [o for o in outcomes if o.isolated is None]
    if leaks or unproven:
        lines = "\n".join(f"  {o.label} {o.op:<7} {o.detail}" for o in outcomes)
        headline = (
            f"{rel.qualified} is not isolated: acting as {user}, {len(leaks)} of {len(outcomes)} operations "
            f"reached the rows of {other.sub}"
            if leaks
            else f"{rel.qualified}: isolation from {other.sub} could not be proven for {len(unproven)} of "
            f"{len(outcomes)} operations, acting as {user}"
        )
        owner = "the user" if key.per_user else "the user's tenants"
        raise IsolationError(
            f"{headline} ({'owned by' if key.per_user else 'tenant'} {theirs}, by {key.describe()}).\n{lines}\n"
            f"Fix: give {rel.qualified} a policy for each command that limits {key.describe()} to {owner}, "
            f"e.g. {example_policy_condition(key)}, as USING and, for INSERT and UPDATE, WITH CHECK."
        )


class _Probe:
    """The operations of :func:`assert_isolated` on one relation."""

    def __init__(self, rls: Rls, rel: Relation, key: TenantKey, user: Principal, mine: str, theirs: str) -> None:
        self.rls = rls
        self.rel = rel
        self.key = key
        self.user = user
        self.mine = mine
        self.theirs = theirs
        self.conn = rls.connection
        self.identity = rls.identity_for(user)  # looked up once
        self._baseline: tuple[int, int] | None = None
        if key.expression:  # the probes send it unparsed with their savepoint: check it parses
            try:  # in a savepoint of its own, so that the test's transaction survives it
                check = sql.SQL("select {} from {} t limit 0").format(key.sql(), rel.ident).as_string(self.conn)
                rolled_back(self.conn, [OWNER_SQL, check], checked=False)
            except psycopg.Error as exc:
                raise IsolationError(f"{rel.qualified}: tenant_sql {key.expression!r} does not run: {exc}") from None

    def _owner(self, query: sql.Composable, params: Mapping[str, Any] | None = None) -> Any:
        with self.rls.as_owner(), self.rls.safely():
            return self.conn.execute(query, params).fetchone()

    def _where_tenant(self, tenant: str) -> tuple[sql.Composable, dict[str, Any]]:
        return sql.SQL("{} is not distinct from %(tenant)s::text").format(
            sql.SQL("({})::text").format(self.key.sql())
        ), {"tenant": tenant}

    def other_rows(self) -> int:
        """The other tenant's rows, as the owner counts them."""
        return self._before()[0]

    def _before(self) -> tuple[int, int]:
        """The fingerprint before any attempt: taken once, since every attempt is rolled back
        (one pass over the table instead of one per probe)."""
        if self._baseline is None:
            self._baseline = self._fingerprint()
        return self._baseline

    def _fingerprint_query(self) -> tuple[sql.Composable, dict[str, Any]]:
        """The other tenant's rows as the owner sees them: count and a checksum of their
        row versions (any UPDATE gives a row a new ctid)."""
        where, params = self._where_tenant(self.theirs)
        query = sql.SQL(
            "select count(*), coalesce(sum(hashtext(t.tableoid::text || t.ctid::text)::bigint), 0) from {} t where {}"
        ).format(self.rel.ident, where)
        return query, params

    def _fingerprint(self) -> tuple[int, int]:
        return tuple(self._owner(*self._fingerprint_query()))  # type: ignore[return-value]

    def _as_user(self, query: sql.Composable, params: Mapping[str, Any] | None = None, setup: Sequence[str] = ()) -> Any:
        """The first row of ``query`` run as the user (after the owner's ``setup``), in one round trip."""
        identity = identity_sql(self.conn, self.identity, self.rls.settings_in_effect())
        results = rolled_back(self.conn, [*setup, identity, bind(self.conn, query, params)])
        return results[-1].rows[0]  # type: ignore[index]

    def _one_address(self, tenant: str) -> str | None:
        """The address of one of the tenant's rows: table and row version (partitions share ctids)."""
        where, params = self._where_tenant(tenant)
        row = self._owner(sql.SQL("select {} from {} t where {} limit 1").format(ADDRESS, self.rel.ident, where), params)
        return row[0] if row else None

    def _theirs(self) -> tuple[list[str], sql.Composable, dict[str, Any]]:
        """How a statement run as the user picks every row of the other tenant, none of them
        sent from Python: statements to run first (as the owner), a condition over ``t``, its
        parameters. A policy may admit only some of the rows (``status = 'public'``): the
        condition covers them all, so that whichever it admits shows."""
        setup, tenant = _tenant_as_user(self.conn, self.rel, self.key, self.identity)
        return setup, sql.SQL("{} is not distinct from %(tenant)s::text").format(tenant), {"tenant": self.theirs}

    def _attempt(self, query: sql.Composable, params: Mapping[str, Any] | None, setup: Sequence[str] = ()) -> tuple[
        psycopg.Error | None, int, tuple[int, int], tuple[int, int]
    ]:
        """Run ``query`` as the user in a savepoint, after the owner's ``setup`` in the same
        one; return (error, rowcount, before, after)."""
        before = self._before()
        statements = [
            *setup,
            identity_sql(self.conn, self.identity, self.rls.settings_in_effect()),
            bind(self.conn, query, params),
            OWNER_SQL,  # the effect, counted with the owner's rights, before the rollback
            bind(self.conn, *self._fingerprint_query()),
        ]
        try:
            results = rolled_back(self.conn, statements)
        except psycopg.Error as exc:  # the statement changed nothing
            if setup and exc.sqlstate == "42501":
                self._check_setup(setup)  # a refusal must be the user's statement's, not the scaffolding's
            return exc, 0, before, before
        return None, results[len(setup) + 1].rowcount, before, tuple(results[-1].rows[0])  # type: ignore[index]

    def _check_setup(self, setup: Sequence[str]) -> None:
        """Raise when the owner cannot create the tenant function or the user cannot call it."""
        statements = [
            *setup,
            identity_sql(self.conn, self.identity, self.rls.settings_in_effect()),
            sql.SQL("select {}(t) from {} t limit 0").format(TENANT_FUNCTION, self.rel.ident).as_string(self.conn),
        ]
        try:
            rolled_back(self.conn, statements)
        except psycopg.Error as exc:
            raise IsolationError(
                f"{self.rel.qualified}: the isolation check could not prepare pg_temp.rlscheck_tenant "
                f"(created by the owner, called as {self.identity.role}): {exc.sqlstate}: {exc.diag.message_primary}"
            ) from None

    def _refused_by_privileges(self, op: str, privilege: str) -> Outcome | None:
        """Without the table privilege PostgreSQL refuses before any row is looked at."""
        if self.rel.granted(self.identity.role, privilege):
            return None
        return Outcome(op, True, f"refused: {self.identity.role} has no {privilege} privilege on {self.rel.qualified}")

    def _judge(self, op: str, error: psycopg.Error | None, rowcount: int, before: tuple[int, int],
               after: tuple[int, int], what: str) -> Outcome:
        changed = after != before
        if error is not None and error.sqlstate == "42501" and not changed:
            return Outcome(op, True, f"refused: {error.diag.message_primary}")
        if error is not None and (error.sqlstate or "").startswith("23"):
            return Outcome(
                op,
                False,
                f"{what}: the row got past RLS and was stopped only by a constraint "
                f"({error.sqlstate} {error.diag.constraint_name or ''}: {error.diag.message_primary}); "
                "PostgreSQL checks policies before constraints, so no policy refused it",
            )
        if error is not None:
            return Outcome(op, None, f"inconclusive: the attempt failed with {error.sqlstate}: {error.diag.message_primary}")
        if changed or rowcount:
            return Outcome(
                op,
                False,
                f"{what}: {rowcount} row(s) affected; the other tenant's rows went from {before[0]} to {after[0]}"
                + (" and their contents changed" if after[0] == before[0] and changed else ""),
            )
        return Outcome(op, True, "no row of the other tenant affected")

    # -- operations -------------------------------------------------------------------

    def select(self) -> Outcome:
        refused = self._refused_by_privileges("select", "SELECT")
        if refused:
            return refused
        total = self.other_rows()
        setup, where, params = self._theirs()
        seen = self._as_user(sql.SQL("select count(*) from {} t where {}").format(self.rel.ident, where), params, setup)[0]
        if seen:
            return Outcome("select", False, f"the user sees {seen} of the other tenant's {total} rows")
        return Outcome("select", True, f"none of the other tenant's {total} rows visible")

    def insert(self) -> Outcome:
        refused = self._refused_by_privileges("insert", "INSERT")
        if refused:
            return refused
        where, params = self._where_tenant(self.theirs)
        with self.rls.as_owner(), self.rls.safely():
            sample = sample_row(self.conn, self.rel, where, params)
        keep = {self.key.column} if self.key.column else set()
        query, values = insert_statement(self.rel, base_row(self.rel, sample, {}, keep=keep))
        return self._judge("insert", *self._attempt(query, values), what="a copy of one of their rows was inserted")

    def update(self) -> Outcome:
        refused = self._refused_by_privileges("update", "UPDATE")
        if refused:
            return refused
        target = self.key.column or updatable_column(self.rel)
        setup, where, params = self._theirs()
        query = sql.SQL("update {rel} t set {col} = t.{col} where {where}").format(
            rel=self.rel.ident, col=sql.Identifier(target), where=where
        )
        return self._judge("update", *self._attempt(query, params, setup), what="their rows were updated")

    def delete(self) -> Outcome:
        refused = self._refused_by_privileges("delete", "DELETE")
        if refused:
            return refused
        setup, where, params = self._theirs()
        query = sql.SQL("delete from {} t where {}").format(self.rel.ident, where)
        return self._judge("delete", *self._attempt(query, params, setup), what="their rows were deleted")

    def move(self) -> Outcome:
        refused = self._refused_by_privileges("move", "UPDATE")
        if refused:
            return refused
        own = self._one_address(self.mine)
        if own is None:
            return Outcome("move", None, f"inconclusive: the user's tenant ({self.mine}) has no row to move")
        where, params = self._where_tenant(self.theirs)
        with self.rls.as_owner(), self.rls.safely():
            sample = sample_row(self.conn, self.rel, where, params) or {}
        # The tenant column and every foreign key column, copied from a row of the other
        # tenant, so that the moved row is consistent and only a policy can refuse it.
        keys = set(self.rel.primary_key)
        columns = {self.key.column} if self.key.column else set()
        columns |= {c for k in self.rel.constraints if k.type == "f" for c in k.columns if c not in keys}
        columns = {c for c in columns if c and c in sample}
        if not columns:
            return Outcome("move", None, "inconclusive: no tenant or foreign key column to move the row with")
        outcome = self._move(own, sample, sorted(columns))
        if outcome.isolated is None and self.key.column and len(columns) > 1 and self.key.column in columns:
            # Copying the foreign keys too tripped something else (a trigger guarding one of
            # them, say): the tenant column alone still tells whether a policy refuses.
            alone = self._move(own, sample, [self.key.column])
            if alone.isolated is not None:
                return alone
        return outcome

    def _move(self, ctid: str, sample: Mapping[str, Any], ordered: list[str]) -> Outcome:
        query = sql.SQL(
            "update {rel} t set ({cols}) = (select {cols} from jsonb_populate_record(null::{rel}, %(row)s::jsonb))"
            " where {address} = %(ctid)s"
        ).format(rel=self.rel.ident, cols=sql.SQL(", ").join(map(sql.Identifier, ordered)), address=ADDRESS)
        values = {"row": to_json({c: sample[c] for c in ordered}), "ctid": ctid}
        return self._judge("move", *self._attempt(query, values), what=f"an own row was moved ({', '.join(ordered)})")


def _tenant_as_user(
    conn: psycopg.Connection[Any], rel: Relation, key: TenantKey, identity: Identity
) -> tuple[list[str], sql.Composable]:
    """A row's tenant (as text) in a statement run as ``identity``, and the statements to run
    before it, in the same savepoint. A column is the row's own. ``tenant_sql`` may read
    parents the user cannot see: it goes in ``pg_temp.rlscheck_tenant(row)``, a SECURITY
    DEFINER function the owner creates (so it reads with the owner's rights) and lets the
    user's role call. The user's RLS quals come first (the call is not leakproof): it runs
    only on the rows a policy lets through."""
    if key.column:
        return [], sql.SQL("({})::text").format(key.sql())
    body = sql.SQL("select ({})::text from (select ($1).*) t").format(key.sql()).as_string(conn)
    setup = [
        OWNER_SQL,
        sql.SQL("create function {}({}) returns text language sql stable security definer as {}").format(
            TENANT_FUNCTION, rel.ident, sql.Literal(body)
        ).as_string(conn),
        # explicitly: ALTER DEFAULT PRIVILEGES may have revoked EXECUTE from PUBLIC
        sql.SQL("grant execute on function {}({}) to {}").format(
            TENANT_FUNCTION, rel.ident, sql.Identifier(identity.role)
        ).as_string(conn),
    ]
    return setup, sql.SQL("{}(t)").format(TENANT_FUNCTION)


def _tenant_of(rls: Rls, rel: Relation, key: TenantKey, principal: Principal) -> str:
    """The principal's tenant: its user id on a per-user table, given, or the single tenant
    of the rows they can see."""
    if key.per_user:
        return str(principal.sub)
    if principal.tenant is not None:
        return str(principal.tenant)
    counts = _visible_tenants(rls, rel, key, principal)
    if len(counts) == 1:
        return next(iter(counts))
    seen = ", ".join(f"{tenant} ({n} rows)" for tenant, n in counts.items()) or "no rows at all"
    raise IsolationError(
        f"cannot tell {principal}'s tenant from {rel.qualified}: they see {seen}. "
        f"Give it: rls.user({principal.sub!r}, tenant=...)."
    )


def _visible_tenants(rls: Rls, rel: Relation | str, key: TenantKey, principal: Principal) -> dict[str, int]:
    source = rel.ident if isinstance(rel, Relation) else sql.SQL(rel)
    if key.column:
        with rls.as_user(principal), rls.safely():
            rows = rls.connection.execute(
                sql.SQL("select ({})::text, count(*) from {} t group by 1 order by 2 desc").format(key.sql(), source)
            ).fetchall()
        return {str(t): n for t, n in rows}
    assert isinstance(rel, Relation)
    # tenant_sql may read parents the user cannot see: counted on the server, as the user,
    # with the owner's function. A tenant_sql that does not run fails when its statement runs
    # (it is the function's body, a string), not when the batch is parsed: the savepoint holds.
    identity = rls.identity_for(principal)
    assert identity is not None
    conn = rls.connection
    setup, tenant = _tenant_as_user(conn, rel, key, identity)
    statements = [
        *setup,
        identity_sql(conn, identity, rls.settings_in_effect()),
        sql.SQL("select {}, count(*) from {} t group by 1 order by 2 desc").format(tenant, rel.ident).as_string(conn),
    ]
    return {str(t): n for t, n in rolled_back(conn, statements)[-1].rows or []}


def assert_no_foreign_rows(
    rls: Rls,
    relation: str,
    *,
    user: Principal,
    tenant_column: str | None = None,
    tenant_sql: str | None = None,
) -> None:
    """Every row ``user`` can read from ``relation`` (a table, a view, or a set-returning
    function call such as ``"my_conversations()"``) belongs to ``user``'s tenant."""
    function_call = "(" in relation
    rel = None if function_call else rls.relation(relation)
    if rel is not None:
        key = tenant_key(rel, tenant_column, tenant_sql, rls.config)
    elif tenant_column:
        key = TenantKey(tenant_column)
    else:
        raise IsolationError(f"{relation}: give tenant_column= (a column of the function's result) to check its rows")
    source: Relation | str = rel if rel is not None else relation
    name = rel.qualified if rel is not None else relation
    counts = _visible_tenants(rls, source, key, user)
    if key.per_user:
        mine = str(user.sub)
    elif user.tenant is not None:
        mine = str(user.tenant)
    elif rel is not None:
        mine = _tenant_of(rls, rel, key, user)
    else:
        raise IsolationError(f"give {user}'s tenant to check {relation}: rls.user({user.sub!r}, tenant=...)")
    src = rel.ident if rel is not None else sql.SQL(relation)
    others = rls.owner_fetchall(
        sql.SQL("select count(*) from {} t where ({})::text is distinct from %(mine)s").format(src, key.sql()),
        {"mine": mine},
    )[0][0]
    if not others:
        raise NothingToTest(
            f"{name} has no rows outside {user}'s tenant ({mine}) even for the owner: there is nothing to prove. "
            "Seed rows for another tenant first."
        )
    foreign = {t: n for t, n in counts.items() if t != mine}
    if foreign:
        listing = ", ".join(f"{'(no tenant)' if t == 'None' else t}: {n}" for t, n in foreign.items())
        headline = (
            f"{name} leaks rows of other tenants: acting as {user}, {sum(foreign.values())} of the rows read "
            f"belong to another tenant ({listing}; by {key.describe()})."
        )
        cause = _leak_cause(rls, rel, relation)
        raise IsolationError(f"{headline}\n{cause}", headline=headline, fix=cause)


def _leak_cause(rls: Rls, rel: Relation | None, relation: str) -> str:
    if rel is not None and rel.is_view and not rel.security_invoker and rel.owner_bypasses_rls:
        return (
            f"Cause: {rel.qualified} is a view that runs with its owner's rights ({rel.owner}, who bypasses RLS), so "
            f"the policies of the tables under it do not apply.\nFix: ALTER VIEW {rel.shown} SET "
            "(security_invoker = true);  -- PostgreSQL 15+"
        )
    if rel is None:
        return (
            f"Cause: {relation} probably runs as SECURITY DEFINER (as its owner), or filters by a parameter the "
            "caller controls.\nFix: make it SECURITY INVOKER, or filter by (select auth.uid()) inside it."
        )
    return f"Fix: check the SELECT policies of {rel.qualified} (and of the tables a view reads)."
