"""Tenant isolation, proven by acting as a user and checking the effect as the owner.

For each operation the check runs in a savepoint that is rolled back: it counts the other
tenant's rows as the owner, tries the operation as the user, and counts again. An
operation is isolated when PostgreSQL refused it (RLS or privileges, SQLSTATE 42501) or
when it changed nothing of the other tenant. A constraint error (23xxx) is not isolation:
PostgreSQL checks RLS before constraints, so the policy let the row through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from .catalog import Relation
from .errors import RlsAssertionError
from .impersonation import Principal
from .rows import base_row, insert_statement, sample_row, to_json
from .scratch import OWNER_SQL, bind, identity_sql, rolled_back

if TYPE_CHECKING:
    from .client import Rls

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
TENANT_COLUMN_GUESSES = ("organization_id", "tenant_id", "org_id", "account_id", "team_id", "workspace_id")


IsolationError = RlsAssertionError  # a tenant isolation check failed (or had nothing to test)


class NothingToTest(RlsAssertionError):
    """An isolation check found no rows to test on: an error for an assertion, a note for the sweep."""


@dataclass(frozen=True)
class TenantKey:
    """Where a row's tenant comes from: a column, or an expression over the row."""

    column: str | None = None
    expression: str | None = None
    per_user: bool = False  # the column holds the owner's user id: a principal's tenant is its sub

    def sql(self, alias: str = "t") -> sql.Composable:
        if self.column:
            return sql.Identifier(alias, self.column)
        return sql.SQL("({})").format(sql.SQL(self.expression or "null"))

    def describe(self) -> str:
        if self.per_user:
            return f"column {self.column} (the owning user)"
        return f"column {self.column}" if self.column else f"tenant_sql {self.expression}"


def configured_key(rel: Relation, column: str | None, expression: str | None) -> TenantKey:
    """A configured key; a ``tenant_sql`` that only names a column of the row is that column
    (so that the move check can set it)."""
    if not column and expression:
        m = re.fullmatch(r'\s*\(?\s*"?(\w+)"?\s*\)?\s*', expression)
        if m and rel.column(m.group(1)):
            return TenantKey(m.group(1))
    return TenantKey(column, None if column else expression)


def owner_column(rel: Relation) -> str | None:
    """A per-user table's owner column: the one column the policies compare with auth.uid()
    (``user_id = (select auth.uid())``)."""
    uid = r"\(*\s*(?:SELECT\s+)?auth\.uid\(\)"
    found = []
    for column in rel.columns:
        col = re.escape(column.name)
        compared = re.compile(
            rf'(?<![\w.])"?{col}"?\s*=\s*{uid}|auth\.uid\(\)[\s)]*(?:AS\s+\w+\s*\)\s*)?=\s*"?{col}"?(?![\w(])',
            re.IGNORECASE,
        )
        if any(compared.search(text or "") for p in rel.policies for text in (p.using, p.with_check)):
            found.append(column.name)
    # Several (sender_id and recipient_id, created_by and assignee_id): a row belongs to more
    # than one user, and no single column says whose it is.
    return found[0] if len(found) == 1 else None


def find_tenant_key(rel: Relation, config: Mapping[str, Any] | None = None) -> TenantKey | None:
    """``[tool.rlscheck.tables."schema.table"]``, else the project's ``tenant_column``, else the
    first usual column name the relation has, else its owner column (a per-user table)."""
    config = config or {}
    table = (config.get("tables") or {}).get(rel.qualified) or {}
    if table.get("tenant_column") or table.get("tenant_sql"):
        return configured_key(rel, table.get("tenant_column"), table.get("tenant_sql"))
    column = next((n for n in _tenant_names(config) if rel.column(n)), None)
    if column is not None:
        return TenantKey(column)
    owner = owner_column(rel)
    return TenantKey(owner, per_user=True) if owner is not None else None


def _tenant_names(config: Mapping[str, Any]) -> list[str]:
    return [config["tenant_column"]] if config.get("tenant_column") else list(TENANT_COLUMN_GUESSES)


def tenant_key(
    rel: Relation,
    tenant_column: str | None,
    tenant_sql: str | None,
    config: Mapping[str, Any] | None = None,
) -> TenantKey:
    """The explicit argument, else :func:`find_tenant_key`; an error when there is none."""
    if tenant_column or tenant_sql:
        key = configured_key(rel, tenant_column, tenant_sql)
    else:
        found = find_tenant_key(rel, config)
        if found is None:
            raise IsolationError(
                f"{rel.qualified}: cannot tell which tenant a row belongs to — it has none of the columns "
                f"{', '.join(_tenant_names(config or {}))}. Pass tenant_column='…', or tenant_sql='(select p.org_id "
                "from parent p where p.id = parent_id)' for a table whose tenant comes through a parent."
            )
        key = found
    if key.column and not rel.column(key.column):
        raise IsolationError(f"{rel.qualified} has no column {key.column!r} (its columns: {', '.join(c.name for c in rel.columns)})")
    return key


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


def updatable_column(rel: Relation) -> str:
    """A column ``SET c = c`` can name: not generated, not an identity column."""
    columns = [c for c in rel.columns if not c.generated and not c.identity]
    preferred = [c for c in columns if c.name in rel.primary_key] or columns
    return (preferred or list(rel.columns))[0].name


def example_policy_condition(key: TenantKey) -> str:
    column = key.column or "tenant_id"
    if key.per_user:
        return f"{column} = (SELECT auth.uid())"
    return (
        f"{column} IN (SELECT m.{column} FROM memberships m WHERE m.user_id = (SELECT auth.uid())) "
        "(memberships: your user-to-tenant table)"
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
        self.identity = rls._identity_for(user)  # looked up once
        self._baseline: tuple[int, int] | None = None
        if key.expression:  # the probes send it unparsed with their savepoint: check it parses
            try:
                self._owner(sql.SQL("select {} from {} t limit 0").format(key.sql(), rel.ident))
            except psycopg.Error as exc:
                raise IsolationError(f"{rel.qualified}: tenant_sql {key.expression!r} does not run: {exc}") from None

    def _owner(self, query: sql.Composable, params: Mapping[str, Any] | None = None) -> Any:
        with self.rls.as_owner():
            return self.conn.execute(query, params).fetchone()

    def _where_tenant(self, tenant: str) -> tuple[sql.Composable, dict[str, Any]]:
        return sql.SQL("{} is not distinct from %(tenant)s::text").format(
            sql.SQL("({})::text").format(self.key.sql())
        ), {"tenant": tenant}

    def other_rows(self) -> int:
        where, params = self._where_tenant(self.theirs)
        return self._owner(sql.SQL("select count(*) from {} t where {}").format(self.rel.ident, where), params)[0]

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

    def _as_user(self, query: sql.Composable, params: Mapping[str, Any] | None = None) -> Any:
        """The first row of ``query`` run as the user, in one round trip."""
        identity = identity_sql(self.conn, self.identity, self.rls._identities.names_in_effect())
        results = rolled_back(self.conn, [identity, bind(self.conn, query, params)])
        return results[1].rows[0]  # type: ignore[index]

    def _ctids(self, tenant: str, limit: int | None = None) -> list[str]:
        """Addresses of the tenant's rows: table and row version (partitions share ctids)."""
        where, params = self._where_tenant(tenant)
        query = sql.SQL(
            "select coalesce(array_agg(a), '{{}}') from (select {} as a from {} t where {} {}) t"
        ).format(ADDRESS, self.rel.ident, where, sql.SQL(f"limit {int(limit)}") if limit else sql.SQL(""))
        return list(self._owner(query, params)[0])

    def _attempt(self, query: sql.Composable, params: Mapping[str, Any] | None) -> tuple[
        psycopg.Error | None, int, tuple[int, int], tuple[int, int]
    ]:
        """Run ``query`` as the user in a savepoint; return (error, rowcount, before, after)."""
        if self._baseline is None:  # every attempt is rolled back: the baseline holds
            self._baseline = self._fingerprint()
        before = self._baseline
        statements = [
            identity_sql(self.conn, self.identity, self.rls._identities.names_in_effect()),
            bind(self.conn, query, params),
            OWNER_SQL,  # the effect, counted with the owner's rights, before the rollback
            bind(self.conn, *self._fingerprint_query()),
        ]
        try:
            results = rolled_back(self.conn, statements)
        except psycopg.Error as exc:  # the statement changed nothing
            return exc, 0, before, before
        return None, results[1].rowcount, before, tuple(results[3].rows[0])  # type: ignore[index]

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
        if self.key.column:
            where, params = self._where_tenant(self.theirs)
            seen = self._as_user(sql.SQL("select count(*) from {} t where {}").format(self.rel.ident, where), params)[0]
        else:
            # The tenant comes through a parent the user may not see: collect the visible
            # rows as the user, evaluate tenant_sql over them as the owner.
            visible = self._as_user(
                sql.SQL("select coalesce(jsonb_agg(to_jsonb(t)), '[]') from {} t").format(self.rel.ident)
            )[0]
            where, params = self._where_tenant(self.theirs)
            seen = self._owner(
                sql.SQL("select count(*) from jsonb_populate_recordset(null::{}, %(rows)s::jsonb) t where {}").format(
                    self.rel.ident, where
                ),
                {**params, "rows": to_json_list(visible)},
            )[0]
        if seen:
            return Outcome("select", False, f"the user sees {seen} of the other tenant's {total} rows")
        return Outcome("select", True, f"none of the other tenant's {total} rows visible")

    def insert(self) -> Outcome:
        refused = self._refused_by_privileges("insert", "INSERT")
        if refused:
            return refused
        where, params = self._where_tenant(self.theirs)
        with self.rls.as_owner():
            sample = sample_row(self.conn, self.rel, where, params)
        keep = {self.key.column} if self.key.column else set()
        query, values = insert_statement(self.rel, base_row(self.rel, sample, {}, keep=keep))
        return self._judge("insert", *self._attempt(query, values), what="a copy of one of their rows was inserted")

    def update(self) -> Outcome:
        refused = self._refused_by_privileges("update", "UPDATE")
        if refused:
            return refused
        target = self.key.column or updatable_column(self.rel)
        query = sql.SQL("update {rel} t set {col} = t.{col} where {address} = any(%(ctids)s::text[])").format(
            rel=self.rel.ident, col=sql.Identifier(target), address=ADDRESS
        )
        return self._judge("update", *self._attempt(query, {"ctids": self._ctids(self.theirs)}), what="their rows were updated")

    def delete(self) -> Outcome:
        refused = self._refused_by_privileges("delete", "DELETE")
        if refused:
            return refused
        query = sql.SQL("delete from {} t where {} = any(%(ctids)s::text[])").format(self.rel.ident, ADDRESS)
        return self._judge("delete", *self._attempt(query, {"ctids": self._ctids(self.theirs)}), what="their rows were deleted")

    def move(self) -> Outcome:
        refused = self._refused_by_privileges("move", "UPDATE")
        if refused:
            return refused
        own = self._ctids(self.mine, limit=1)
        if not own:
            return Outcome("move", None, f"inconclusive: the user's tenant ({self.mine}) has no row to move")
        where, params = self._where_tenant(self.theirs)
        with self.rls.as_owner():
            sample = sample_row(self.conn, self.rel, where, params) or {}
        # The tenant column and every foreign key column, copied from a row of the other
        # tenant, so that the moved row is consistent and only a policy can refuse it.
        keys = set(self.rel.primary_key)
        columns = {self.key.column} if self.key.column else set()
        columns |= {c for k in self.rel.constraints if k.type == "f" for c in k.columns if c not in keys}
        columns = {c for c in columns if c and c in sample}
        if not columns:
            return Outcome("move", None, "inconclusive: no tenant or foreign key column to move the row with")
        outcome = self._move(own[0], sample, sorted(columns))
        if outcome.isolated is None and self.key.column and len(columns) > 1 and self.key.column in columns:
            # Copying the foreign keys too tripped something else (a trigger guarding one of
            # them, say): the tenant column alone still tells whether a policy refuses.
            alone = self._move(own[0], sample, [self.key.column])
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


def to_json_list(rows: Any) -> str:
    return json.dumps(rows, default=str)


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
    with rls.as_user(principal):
        if key.column:
            rows = rls.connection.execute(
                sql.SQL("select ({})::text, count(*) from {} t group by 1 order by 2 desc").format(key.sql(), source)
            ).fetchall()
            return {str(t): n for t, n in rows}
        visible = rls.connection.execute(
            sql.SQL("select coalesce(jsonb_agg(to_jsonb(t)), '[]') from {} t").format(source)
        ).fetchone()[0]
    assert isinstance(rel, Relation)
    rows = rls.owner_fetchall(
        sql.SQL("select ({})::text, count(*) from jsonb_populate_recordset(null::{}, %(rows)s::jsonb) t group by 1 order by 2 desc").format(
            key.sql(), rel.ident
        ),
        {"rows": to_json_list(visible)},
    )
    return {str(t): n for t, n in rows}


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
        raise IsolationError(
            f"{name} leaks rows of other tenants: acting as {user}, {sum(foreign.values())} of the rows read "
            f"belong to another tenant ({listing}; by {key.describe()}).\n{_leak_cause(rls, rel, relation)}"
        )


def _leak_cause(rls: Rls, rel: Relation | None, relation: str) -> str:
    if rel is not None and rel.is_view and not rel.security_invoker and rel.owner_bypasses_rls:
        return (
            f"Cause: {rel.qualified} is a view that runs with its owner's rights ({rel.owner}, who bypasses RLS), so "
            f"the policies of the tables under it do not apply.\nFix: ALTER VIEW {rel.qualified} SET "
            "(security_invoker = true);  -- PostgreSQL 15+"
        )
    if rel is None:
        return (
            f"Cause: {relation} probably runs as SECURITY DEFINER (as its owner), or filters by a parameter the "
            "caller controls.\nFix: make it SECURITY INVOKER, or filter by (select auth.uid()) inside it."
        )
    return f"Fix: check the SELECT policies of {rel.qualified} (and of the tables a view reads)."
