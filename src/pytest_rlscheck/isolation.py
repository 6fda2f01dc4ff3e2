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

Statement shapes. PostgreSQL adds the SELECT policies to an UPDATE or DELETE only when the
statement reads the table's columns (a WHERE, a SET that reads a column, RETURNING); the
forms without a WHERE (``update t set c = <value>``, ``delete from t``) get the command's
own policies alone. They are probed too (``update_unfiltered``, ``delete_unfiltered``,
``move_unfiltered``); on Supabase, safeupdate refuses them through the API, so a leak that
only they show is latent. An upsert (``INSERT … ON CONFLICT (<their key>) DO UPDATE``, as
PostgREST sends it) takes the update path on the other tenant's row. A move sets the tenant
column, each foreign key and all of them together, each alone: it is a leak when the moved
row then counts as the other tenant's (by the tenant key) or the other tenant sees it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from .catalog import Relation
from .errors import RlsAssertionError
from .impersonation import Identity, Principal, anon_identity
from .rows import base_row, insert_statement, to_json
from .scratch import OWNER_SQL, bind, identity_sql, rolled_back, superuser_session
from .tenancy import (  # noqa: F401 - re-exported: the tenant model is public here too
    TENANT_COLUMN_GUESSES,
    TenantKey,
    configured_key,
    example_policy_condition,
    find_tenant_key,
    keyed_by_itself,
    owner_column,
    tenant_key,
    updatable_column,
)

if TYPE_CHECKING:
    from .protocol import RlsProtocol as Rls

__all__ = [
    "ALL_OPS",
    "ANON_OPS",
    "FAMILIES",
    "SAFEUPDATE_NOTE",
    "UNFILTERED_OPS",
    "NothingToTest",
    "Outcome",
    "TenantKey",
    "anon_applies",
    "anon_outcomes",
    "anon_reads",
    "assert_isolated",
    "assert_no_foreign_rows",
    "isolation_outcomes",
    "find_tenant_key",
    "tenant_key",
]

ALL_OPS = (
    "select", "insert", "insert_returning", "update", "update_unfiltered", "delete", "delete_unfiltered",
    "move", "move_unfiltered", "upsert",
)
#: The shapes without a WHERE: PostgreSQL applies no SELECT policy to them, and on Supabase
#: safeupdate refuses them through the API (a leak only they show is latent).
UNFILTERED_OPS = frozenset({"update_unfiltered", "delete_unfiltered", "move_unfiltered"})
#: What anon is put through: every operation but moving a row of its own (it has none; the
#: unfiltered move tries every row anon's UPDATE policies admit).
ANON_OPS = tuple(op for op in ALL_OPS if op != "move")
#: Each operation's family, as verdicts name them (``verified (select, insert, … as alice/bob)``).
FAMILIES = {
    "select": "select", "insert": "insert", "insert_returning": "insert", "update": "update",
    "update_unfiltered": "update", "delete": "delete", "delete_unfiltered": "delete", "move": "move",
    "move_unfiltered": "move", "upsert": "upsert",
}
#: The commands whose policies decide each operation.
COMMANDS = {
    "select": ("SELECT",), "insert": ("INSERT",), "insert_returning": ("INSERT",), "update": ("UPDATE",),
    "update_unfiltered": ("UPDATE",), "delete": ("DELETE",), "delete_unfiltered": ("DELETE",), "move": ("UPDATE",),
    "move_unfiltered": ("UPDATE",), "upsert": ("INSERT", "UPDATE"),
}
SAFEUPDATE_NOTE = (
    "safeupdate refuses it through the API today; one wider SELECT policy (or a function that runs it) makes it a leak"
)
#: A row's address: its table (a partition, for a partitioned table) and its version.
ADDRESS = sql.SQL("(t.tableoid::text || ':' || t.ctid::text)")
#: A row's tenant by ``tenant_sql``, with the owner's rights: a temporary function, created
#: inside the probe's savepoint, so that it goes with the rollback.
TENANT_FUNCTION_NAME = "rlscheck_tenant"
TENANT_FUNCTION = sql.Identifier("pg_temp", TENANT_FUNCTION_NAME)
ANON = "anon"


#: RAISE EXCEPTION's SQLSTATE: a trigger (or a function) of the schema refused the write, as
#: it refuses it through the API; nothing was written.
#: What a function or trigger raises to refuse: RAISE (P0001), a lookup that found nothing
#: (P0002: no_data_found, a STRICT INTO or a RAISE with that errcode), an ASSERT (P0004).
RAISED = ("P0001", "P0002", "P0004")

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
    #: What stopped it, when isolated: ``privilege`` (no table privilege), ``policy`` (RLS:
    #: refused, or reached none of theirs), ``schema`` (a trigger, function or constraint
    #: refused it), ``own`` (it went through on the user's own rows only), ``n/a`` (the
    #: operation does not apply). For the access matrix (:mod:`.access`).
    #: (These annotate the verdict; they take no part in comparing two outcomes.)
    by: str = field(default="policy", compare=False)
    #: The user's own rows the statement reached (None: not measured).
    own_rows: int | None = field(default=None, compare=False)
    #: The other tenant's rows it reached, and how many there are (None: not counted).
    reached: int | None = field(default=None, compare=False)
    total: int | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return {True: "ok  ", False: "LEAK", None: "??  "}[self.isolated]

    @property
    def unfiltered(self) -> bool:
        """A shape without a WHERE: what Supabase's safeupdate refuses through the API."""
        return self.op in UNFILTERED_OPS


def _ordered(ops: Sequence[str]) -> list[str]:
    unknown = set(ops) - set(ALL_OPS)
    if unknown:
        raise ValueError(f"unknown ops {sorted(unknown)}; choose from {ALL_OPS}")
    return sorted(dict.fromkeys(ops), key=ALL_OPS.index)  # select before the shapes it vouches for


def isolation_outcomes(
    rls: Rls, rel: Relation, key: TenantKey, user: Principal, other: Principal, ops: Sequence[str] = ALL_OPS
) -> tuple[list[Outcome], str]:
    """Run each operation of the isolation check; raise when there is nothing to test."""
    mine = _tenant_of(rls, rel, key, user)
    theirs = _tenant_of(rls, rel, key, other)
    if str(mine) == str(theirs):
        raise IsolationError(f"{user} and {other} are in the same tenant ({mine}) of {rel.qualified}: nothing to isolate")
    probe = _Probe(rls, rel, key, user, str(mine), str(theirs), other=other)
    if probe.other_rows() == 0:
        raise NothingToTest(
            f"{rel.qualified} has no rows of {other}'s tenant ({theirs}) by {key.describe()}: there is nothing to "
            "prove isolation on. Seed rows for both tenants (or create them in the test) first."
        )
    return probe.run(ops), str(theirs)


def anon_applies(rel: Relation) -> bool:
    """Whether anon can reach ``rel`` at all: RLS on, a privilege, and a policy for anon or PUBLIC
    (``auth.uid() is null or …`` admits it). Otherwise RLS or the grants refuse it everything."""
    privileged = any(rel.granted(ANON, p) for p in ("SELECT", "INSERT", "UPDATE", "DELETE"))
    return rel.rls_enabled and privileged and any(p.applies_to(ANON) for p in rel.policies)


def anon_outcomes(
    rls: Rls, rel: Relation, key: TenantKey, other: Principal | None = None, ops: Sequence[str] = ANON_OPS
) -> tuple[list[Outcome], str]:
    """The operations of the isolation check acting as anon (the anon key), against ``other``'s
    tenant, or with ``other=None`` against every row that belongs to a tenant (or a user)."""
    theirs = None if other is None else _tenant_of(rls, rel, key, other)
    probe = _Probe(rls, rel, key, anon_identity(rls.config.platform), None, theirs, other=other)
    if probe.other_rows() == 0:
        whose = f"{other}'s tenant ({theirs})" if other is not None else "any tenant"
        raise NothingToTest(f"{rel.qualified} has no rows of {whose} by {key.describe()} to try anon on.")
    return probe.run([op for op in ops if op != "move"]), "any tenant" if theirs is None else str(theirs)


def _lines(outcomes: Sequence[Outcome]) -> list[str]:
    width = max([7, *(len(o.op) for o in outcomes)])
    latent = f" (latent: {SAFEUPDATE_NOTE})"
    return [f"  {o.label} {o.op:<{width}} {o.detail}" + (latent if o.unfiltered and o.isolated is False else "") for o in outcomes]


def assert_isolated(
    rls: Rls,
    table: str,
    *,
    user: Principal,
    other: Principal,
    tenant_column: str | None = None,
    tenant_sql: str | None = None,
    ops: Sequence[str] = ALL_OPS,
    anon: bool = True,
) -> None:
    """Prove, acting as ``user``, that ``other``'s rows of ``table`` cannot be read, written
    into, updated, deleted or upserted over, with or without a WHERE, and that ``user``
    cannot move an own row into ``other``'s tenant; with ``anon`` (the default), the same
    for the anon key wherever anon holds a privilege and a policy applies to it."""
    _ordered(ops)
    rel = rls.relation(table)
    key = tenant_key(rel, tenant_column, tenant_sql, rls.config)
    outcomes, theirs = isolation_outcomes(rls, rel, key, user, other, ops)
    groups = [(f"acting as {user}", outcomes)]
    if anon and anon_applies(rel):
        anon_ops = [op for op in ops if op != "move" and not (key.per_user and op == "select")]
        try:
            groups.append(("acting as anon", anon_outcomes(rls, rel, key, other, anon_ops)[0]))
        except NothingToTest:
            pass  # other's rows were found above: anon's look-up finds them too
    everything = [o for _, group in groups for o in group]
    leaks = [o for o in everything if o.isolated is False]
    unproven = [o for o in everything if o.isolated is None]
    if leaks or unproven:
        who = " and ".join(label.removeprefix("acting as ") for label, group in groups if any(o.isolated is False for o in group))
        lines = "\n".join(
            (f"  {label}:\n" if len(groups) > 1 else "") + "\n".join(_lines(group)) for label, group in groups
        )
        headline = (
            f"{rel.qualified} is not isolated: acting as {who}, {len(leaks)} of {len(everything)} operations "
            f"reached the rows of {other.sub}"
            if leaks
            else f"{rel.qualified}: isolation from {other.sub} could not be proven for {len(unproven)} of "
            f"{len(everything)} operations, acting as {user}"
        )
        owner = "the user" if key.per_user else "the user's tenants"
        raise IsolationError(
            f"{headline} ({'owned by' if key.per_user else 'tenant'} {theirs}, by {key.describe()}).\n{lines}\n"
            f"Fix: give {rel.qualified} a policy for each command that limits {key.describe()} to {owner}, "
            f"e.g. {example_policy_condition(key)}, as USING and, for INSERT and UPDATE, WITH CHECK"
            + (" (UPDATE and DELETE policies no wider than the SELECT ones: without a WHERE, only they apply)"
               if any(o.unfiltered for o in leaks) else "")
            + (" — and none for anon or PUBLIC that admits a tenant's rows" if any(l == "acting as anon" and any(
                o.isolated is False for o in g) for l, g in groups) else "")
            + "."
        )


@dataclass(frozen=True)
class _Attempt:
    """What one attempt did: the error (None when it went through), the statement's row count,
    the other tenant's fingerprint before and after, and how many rows the other principal
    saw before and after (when asked)."""

    error: psycopg.Error | None
    rowcount: int
    before: tuple[int, int]
    after: tuple[int, int]
    seen_before: int | None = None
    seen_after: int | None = None

    @property
    def changed(self) -> bool:
        return self.after != self.before

    @property
    def sqlstate(self) -> str:
        return (self.error.sqlstate or "") if self.error is not None else ""

    def error_text(self) -> str:
        assert self.error is not None
        diag = self.error.diag
        return f"{self.error.sqlstate} {diag.constraint_name or ''}: {diag.message_primary}".replace("  ", " ")


class _Probe:
    """The operations of :func:`assert_isolated` on one relation, acting as a user (a
    :class:`Principal`) or as anon (an :class:`Identity`, with no tenant of its own: ``mine``
    None). ``theirs`` None stands for every row that belongs to a tenant."""

    def __init__(self, rls: Rls, rel: Relation, key: TenantKey, user: Principal | Identity, mine: str | None,
                 theirs: str | None, *, other: Principal | None = None) -> None:
        self.rls = rls
        self.rel = rel
        self.key = key
        self.user = user
        self.mine = mine
        self.theirs = theirs
        self.conn = rls.connection
        self.identity = rls.identity_for(user)  # looked up once
        self.other_identity = rls.identity_for(other) if other is not None else None
        self.actor = "anon" if isinstance(user, Identity) else "the user"
        self.whose = "the other tenant's" if theirs is not None else "the tenants'"
        self._baseline: tuple[int, int] | None = None
        self._seen: int | None = None
        self._samples: dict[str, Any] = {}
        self.results: dict[str, Outcome] = {}
        #: the one-row move of each set of columns: whether RLS refused it, and its outcome
        self._moved: dict[tuple[str, ...], tuple[bool, Outcome]] = {}
        if key.expression:  # the probes send it unparsed with their savepoint: check it parses
            try:  # in a savepoint of its own, so that the test's transaction survives it
                check = sql.SQL("select {} from {} t limit 0").format(key.sql(), rel.ident).as_string(self.conn)
                rolled_back(self.conn, [OWNER_SQL, check], checked=False)
            except psycopg.Error as exc:
                raise IsolationError(f"{rel.qualified}: tenant_sql {key.expression!r} does not run: {exc}") from None

    def run(self, ops: Sequence[str]) -> list[Outcome]:
        for op in _ordered(ops):
            self.results[op] = getattr(self, op)()
        return [self.results[op] for op in _ordered(ops)]

    def _owner(self, query: sql.Composable, params: Mapping[str, Any] | None = None) -> Any:
        with self.rls.as_owner(), self.rls.safely():
            return self.conn.execute(query, params).fetchone()

    def _where_tenant(self, tenant: str | None, param: str = "tenant") -> tuple[sql.Composable, dict[str, Any]]:
        value = sql.SQL("({})::text").format(self.key.sql())
        if tenant is None:  # any tenant's (any user's) row
            return sql.SQL("{} is not null").format(value), {}
        return sql.SQL("{} is not distinct from {}::text").format(value, sql.Placeholder(param)), {param: tenant}

    def other_rows(self) -> int:
        """The other tenant's rows, as the owner counts them."""
        return self._before()[0]

    def _before(self) -> tuple[int, int]:
        """The fingerprint before any attempt: taken once, since every attempt is rolled back
        (one pass over the table instead of one per probe), with the rows the attempts copy
        from in the same query: one of theirs, and one of the user's own with its address."""
        if self._baseline is None:
            fingerprint, params = self._fingerprint_query()
            theirs, _ = self._where_tenant(self.theirs)
            mine, own_params = self._where_tenant(self.mine, "mine") if self.mine is not None else (sql.SQL("false"), {})
            query = sql.SQL(
                "select f.*, o.address, o.row, s.row from ({fingerprint}) f"
                " left join lateral (select {address} as address, to_jsonb(t) as row from {rel} t where {mine} limit 1) o on true"
                " left join lateral (select to_jsonb(t) as row from {rel} t where {theirs} limit 1) s on true"
            ).format(fingerprint=fingerprint, address=ADDRESS, rel=self.rel.ident, mine=mine, theirs=theirs)
            count, checksum, address, own, sample = self._owner(query, {**params, **own_params})
            self._baseline = (count, checksum)
            self._samples.setdefault("own", (address, own) if address is not None else None)
            self._samples.setdefault("theirs", sample)
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

    def _seen_statements(self) -> list[str]:
        """As the other principal: how many rows of the relation they see."""
        assert self.other_identity is not None
        return [
            identity_sql(self.conn, self.other_identity, self.rls.settings_in_effect()),
            sql.SQL("select count(*) from {} t").format(self.rel.ident).as_string(self.conn),
        ]

    def _seen_before(self) -> int | None:
        if self.other_identity is None:
            return None
        if self._seen is None:
            self._seen = rolled_back(self.conn, self._seen_statements())[-1].rows[0][0]  # type: ignore[index]
        return self._seen

    def _as_user(self, query: sql.Composable, params: Mapping[str, Any] | None = None, setup: Sequence[str] = ()) -> Any:
        """The first row of ``query`` run as the user (after the owner's ``setup``), in one round trip."""
        identity = identity_sql(self.conn, self.identity, self.rls.settings_in_effect())
        try:
            results = rolled_back(self.conn, [*setup, identity, bind(self.conn, query, params)])
        except psycopg.Error as exc:
            if setup and exc.sqlstate == "42501":
                self._check_setup(setup)  # the scaffolding's refusal is the check's failure, not the user's
            raise
        return results[-1].rows[0]  # type: ignore[index]

    def _own(self) -> tuple[str, dict[str, Any]] | None:
        """One of the user's own rows: its address and its values (as JSON), read with the baseline."""
        self._before()
        return self._samples.get("own")

    def _their_sample(self) -> dict[str, Any] | None:
        """One row of the other tenant's (as JSON), read with the baseline."""
        self._before()
        return self._samples.get("theirs")

    def _their_sample_tenant(self) -> str:
        sample = self._their_sample() or {}
        return str(sample.get(self.key.column, "?")) if self.key.column else "of the sample row"

    def _theirs(self) -> tuple[list[str], sql.Composable, dict[str, Any]]:
        """How a statement run as the user picks every row of the other tenant, none of them
        sent from Python: statements to run first (as the owner), a condition over ``t``, its
        parameters. A policy may admit only some of the rows (``status = 'public'``): the
        condition covers them all, so that whichever it admits shows."""
        setup, tenant = _tenant_as_user(self.conn, self.rel, self.key, self.identity)
        if self.theirs is None:
            return setup, sql.SQL("{} is not null").format(tenant), {}
        return setup, sql.SQL("{} is not distinct from %(tenant)s::text").format(tenant), {"tenant": self.theirs}

    def _attempt(self, query: sql.Composable, params: Mapping[str, Any] | None, setup: Sequence[str] = ()) -> tuple[
        psycopg.Error | None, int, tuple[int, int], tuple[int, int]
    ]:
        """Run ``query`` as the user in a savepoint, after the owner's ``setup`` in the same
        one; return (error, rowcount, before, after)."""
        done = self._try(query, params, setup)
        return done.error, done.rowcount, done.before, done.after

    def _try(self, query: sql.Composable, params: Mapping[str, Any] | None, setup: Sequence[str] = (), *,
             seen: bool = False) -> _Attempt:
        """:meth:`_attempt`, and with ``seen`` also what the other principal sees afterwards
        (acting as them, in the same savepoint), and before (counted only when it matters: an
        attempt that went through and made no row theirs)."""
        before = self._before()
        seen = seen and self.other_identity is not None
        statements = [
            *setup,
            identity_sql(self.conn, self.identity, self.rls.settings_in_effect()),
            bind(self.conn, query, params),
            OWNER_SQL,  # the effect, counted with the owner's rights, before the rollback
            bind(self.conn, *self._fingerprint_query()),
        ]
        if seen:
            statements += self._seen_statements()
        try:
            results = rolled_back(self.conn, statements)
        except psycopg.Error as exc:  # the statement changed nothing
            if seen:  # the other principal's count may be what failed: then judge without it
                alone = self._try(query, params, setup)
                if alone.error is None:
                    return alone
            if exc.sqlstate == "42501" and any(TENANT_FUNCTION_NAME in statement for statement in setup):
                self._check_setup(setup)  # a refusal must be the user's statement's, not the scaffolding's
            return _Attempt(exc, 0, before, before)
        after = tuple(results[len(setup) + 3].rows[0])  # type: ignore[index]
        if not seen:
            return _Attempt(None, results[len(setup) + 1].rowcount, before, after)  # type: ignore[arg-type]
        return _Attempt(None, results[len(setup) + 1].rowcount, before, after,  # type: ignore[arg-type]
                        self._seen_before(), results[-1].rows[0][0])  # type: ignore[index]

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

    def _refused_by_privileges(self, op: str, *privileges: str) -> Outcome | None:
        """Without the table privilege PostgreSQL refuses before any row is looked at."""
        missing = [p for p in privileges if not self.rel.granted(self.identity.role, p)]
        if not missing:
            return None
        return Outcome(op, True, f"refused: {self.identity.role} has no {' or '.join(missing)} privilege on {self.rel.qualified}",
                       by="privilege")

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
        if error is not None and error.sqlstate in RAISED and not changed:
            return Outcome(op, True, f"refused by the schema (a trigger or function raised: {error.diag.message_primary})",
                           by="schema")
        if error is not None:
            return Outcome(op, None, f"inconclusive: the attempt failed with {error.sqlstate}: {error.diag.message_primary}")
        if changed or rowcount:
            return Outcome(
                op,
                False,
                f"{what}: {rowcount} row(s) affected; {self.whose} rows went from {before[0]} to {after[0]}"
                + (" and their contents changed" if after[0] == before[0] and changed else ""),
                reached=rowcount, total=before[0],
            )
        return Outcome(op, True, "no row of the other tenant affected" if self.theirs is not None else "no tenant's row affected")

    def _judge_unfiltered(self, op: str, done: _Attempt, what: str, *, constraint_is_leak: bool = False) -> Outcome:
        """A statement without a WHERE also writes the user's own rows: only the other tenant's
        fingerprint tells (a constraint error may come from an own row, unless the shape
        leaves own rows as they were)."""
        if done.error is not None and done.sqlstate == "42501":
            return Outcome(op, True, f"refused: {done.error.diag.message_primary}")
        if done.error is not None and done.sqlstate.startswith("23") and constraint_is_leak:
            return Outcome(op, False, f"{what}: a row of theirs got past RLS and was stopped only by a constraint "
                           f"({done.error_text()}); PostgreSQL checks policies before constraints")
        if done.error is not None and done.sqlstate in RAISED and not done.changed:
            return Outcome(op, True, f"refused by the schema (a trigger or function raised: {done.error.diag.message_primary})",
                           by="schema")
        if done.error is not None:
            return Outcome(op, None, f"inconclusive: the attempt failed with {done.error_text()}")
        if done.changed:
            return Outcome(op, False, f"{what}: {self.whose} rows went from {done.before[0]} to {done.after[0]}"
                           + (" and their contents changed" if done.after[0] == done.before[0] else ""))
        return Outcome(op, True, f"{done.rowcount} row(s) written, none of {self.whose}",
                       by="own" if done.rowcount else "policy", own_rows=done.rowcount, reached=0, total=done.before[0])

    def _no_wider_than_select(self, command: str) -> bool:
        """Whether ``command``'s policies for the acting role admit only rows its SELECT
        policies admit — each permissive USING is a permissive SELECT USING, each restrictive
        SELECT USING a restrictive one of the command (the same expressions, as PostgreSQL
        prints them) — while the select probe saw none of theirs: then the shape without a
        WHERE (the command's policies alone) reaches none of theirs either."""
        if not self._select_saw_none():
            return False
        role = self.identity.role
        own = [p for p in self.rel.policies if p.covers(command) and p.applies_to(role)]
        select = [p for p in self.rel.policies if p.covers("SELECT") and p.applies_to(role)]
        permissive = {p.using for p in own if p.permissive}
        if None in permissive:
            return False
        return permissive <= {p.using for p in select if p.permissive} and {
            p.using for p in select if not p.permissive
        } <= {p.using for p in own if not p.permissive}

    def _select_saw_none(self) -> bool:
        """Whether the select probe ran (the role has the SELECT privilege) and saw none of
        their rows. PostgreSQL adds the SELECT policies to every statement that reads the
        table — an UPDATE or DELETE with a WHERE, the existing row of an ON CONFLICT DO
        UPDATE — so those reach none of their rows either."""
        if not self.rel.granted(self.identity.role, "SELECT"):
            return False
        if "select" not in self.results:
            self.results["select"] = self.select()  # one count, against statements over every row of theirs
        return self.results["select"].isolated is True

    # -- operations -------------------------------------------------------------------

    def select(self) -> Outcome:
        refused = self._refused_by_privileges("select", "SELECT")
        if refused:
            return refused
        total = self.other_rows()
        setup, where, params = self._theirs()
        own = self._own() if self.mine is not None else None
        if own is None:  # no row of the user's own to count (or anon, who has none)
            query = sql.SQL("select count(*), null from {} t where {}").format(self.rel.ident, where)
        else:  # the same statement counts the user's own rows too, for the access matrix
            _, tenant = _tenant_as_user(self.conn, self.rel, self.key, self.identity)
            query = sql.SQL(
                "select count(*) filter (where {where}), count(*) filter (where {tenant} is not distinct from %(mine)s::text)"
                " from {rel} t"
            ).format(where=where, tenant=tenant, rel=self.rel.ident)
            params = {**params, "mine": self.mine}
        seen, own_seen = self._as_user(query, params, setup)
        whose = "the other tenant's" if self.theirs is not None else "the tenants'"
        if seen:
            return Outcome("select", False, f"{self.actor} sees {seen} of {whose} {total} rows", own_rows=own_seen,
                           reached=seen, total=total)
        return Outcome("select", True, f"none of {whose} {total} rows visible", by="own" if own_seen else "policy",
                       own_rows=own_seen, reached=0, total=total)

    def _copy_of_theirs(self, returning: bool) -> tuple[sql.Composable, dict[str, Any]]:
        keep = {self.key.column} if self.key.column else set()
        query, values = insert_statement(self.rel, base_row(self.rel, self._their_sample(), {}, keep=keep))
        return (query + sql.SQL(" returning *") if returning else query), values

    def insert(self) -> Outcome:
        refused = self._refused_by_privileges("insert", "INSERT")
        if refused:
            return refused
        return self._insert("insert", returning=False)

    def _insert(self, op: str, *, returning: bool) -> Outcome:
        what = "a copy of one of their rows was inserted" + (" and read back (RETURNING *)" if returning else "")
        query, values = self._copy_of_theirs(returning=returning)
        attempt = self._attempt(query, values)
        error = attempt[0]
        if error is not None and error.sqlstate == "23505" and self._one_row_per_tenant(error.diag.constraint_name):
            if self._is_root():
                return Outcome(op, True, "their row is their tenant itself (the tenant key is this table's own "
                               "key): a row of their tenant can only collide with it")
            if self.theirs is None:  # anon, against every tenant: no one tenant's row to set aside
                return self._judge(op, *attempt, what=what)
            # one row per tenant (billing per organization): with theirs set aside, could the user write it?
            where, params = self._where_tenant(str(self.theirs))
            setup = [OWNER_SQL, bind(self.conn, sql.SQL("delete from {} t where {}").format(self.rel.ident, where), params)]
            retry = self._attempt(query, values, setup)
            if retry[0] is not None and (retry[0].sqlstate or "").startswith("23"):
                return Outcome(op, None, "inconclusive: their row (one per tenant) stopped the copy, and it could not "
                               f"be set aside to try without it ({retry[0].sqlstate}: {retry[0].diag.message_primary})")
            return self._judge(op, *retry, what=f"{what} (one row per tenant: theirs set aside)")
        return self._judge(op, *attempt, what=what)

    def _is_root(self) -> bool:
        return keyed_by_itself(self.rel, self.key)

    def _policies_read_key(self) -> bool:
        """Whether the table's policies read its tenant column (compare it, test it against a
        set, or pass it to a function they call): then a row naming their tenant is theirs."""
        column = self.key.column
        return column is None or any(
            column in facts.filter_columns() or any(column in call.row_columns for call in facts.calls)
            for policy in self.rel.policies
            for _, _, facts in policy.clauses()
        )

    def _one_row_per_tenant(self, constraint: str | None) -> bool:
        """Whether ``constraint`` is a unique key of the tenant column alone (one row per tenant)."""
        if not self.key.column or constraint is None:
            return False
        keys = [k.columns for k in self.rel.constraints if k.name == constraint and k.type in ("p", "u")]
        keys += [tuple(c for c in i.columns if c) for i in self.rel.indexes if i.name == constraint and i.unique]
        return any(k == (self.key.column,) for k in keys)

    def insert_returning(self) -> Outcome:
        """``INSERT … RETURNING *`` (PostgREST's ``return=representation``): RETURNING only adds
        the SELECT policies' check of the new row, so a refused insert vouches for it."""
        refused = self._refused_by_privileges("insert_returning", "INSERT", "SELECT")
        if refused:
            return refused
        plain = self.results.get("insert")
        if plain is not None and plain.isolated is True:
            return Outcome("insert_returning", True, "refused with the plain insert: RETURNING only adds the SELECT "
                           "policies' check of the new row", by=plain.by)
        return self._insert("insert_returning", returning=True)

    def update(self) -> Outcome:
        refused = self._refused_by_privileges("update", "UPDATE")
        if refused:
            return refused
        if self._select_saw_none():
            return Outcome("update", True, f"reaches none of theirs: with a WHERE PostgreSQL adds the SELECT policies, "
                           f"under which {self.actor} sees none of their rows")
        target = self.key.column or updatable_column(self.rel)
        setup, where, params = self._theirs()
        query = sql.SQL("update {rel} t set {col} = t.{col} where {where}").format(
            rel=self.rel.ident, col=sql.Identifier(target), where=where
        )
        return self._judge("update", *self._attempt(query, params, setup), what="their rows were updated")

    def update_unfiltered(self) -> Outcome:
        """``UPDATE t SET <column> = <value>`` without a WHERE, which reads no column: only the
        UPDATE policies apply. With a tenant column the value is the user's own tenant (their
        rows, if reached, are taken over: WITH CHECK passes for the user's tenant); otherwise a
        column that no key, constraint or policy filter names is set to its DEFAULT (or NULL)."""
        op = "update_unfiltered"
        settled = self._settled_without_where(op, "UPDATE")
        if settled:
            return settled
        if self.key.column and self.mine is not None:
            query = sql.SQL("update {rel} t set ({col}) = (select {col} from jsonb_populate_record(null::{rel}, %(row)s::jsonb))"
                            ).format(rel=self.rel.ident, col=sql.Identifier(self.key.column))
            done = self._try(query, {"row": to_json({self.key.column: self.mine})}, self._without_triggers())
            return self._judge_unfiltered(op, done, "their rows were taken into the user's tenant", constraint_is_leak=True)
        column, value = self._free_column()
        if column is None:
            return Outcome(op, None, "inconclusive: no column to set without reading it (every one is in a key or a "
                           "constraint)")
        query = sql.SQL("update {} t set {} = {}").format(self.rel.ident, sql.Identifier(column), sql.SQL(value))
        return self._judge_unfiltered(op, self._try(query, None, self._without_triggers()), "their rows were updated")

    def _settled_without_where(self, op: str, command: str) -> Outcome | None:
        """A statement without a WHERE the privileges refuse, or whose policies admit no more
        than the SELECT policies (which admit none of their rows): no need to run it."""
        refused = self._refused_by_privileges(op, command)
        if refused:
            return refused
        if self._no_wider_than_select(command):
            return Outcome(op, True, f"reaches none of theirs: the {command} policies admit no more than the SELECT "
                           "policies (the same expressions), which admit none of their rows")
        return None

    def _free_column(self) -> tuple[str | None, str]:
        """A column to set without reading anything: in no key, constraint or policy filter;
        one with a DEFAULT first, else a nullable one."""
        # (PostgreSQL 18 lists NOT NULL as constraints too: those say nothing about the value)
        constrained = {c for k in self.rel.constraints if k.type != "n" for c in k.columns} | {
            c for k in self.rel.unique_keys for c in k
        } | {c for p in self.rel.policies for _, _, facts in p.clauses() for c in facts.filter_columns()}
        free = [c for c in self.rel.columns if not (c.generated or c.identity) and c.name not in constrained
                and c.name != self.key.column]
        column = next((c for c in free if c.has_default), None) or next((c for c in free if not c.not_null), None)
        if column is None:
            return None, ""
        return column.name, "default" if column.has_default else "null"

    def delete(self) -> Outcome:
        refused = self._refused_by_privileges("delete", "DELETE")
        if refused:
            return refused
        if self._select_saw_none():
            return Outcome("delete", True, f"reaches none of theirs: with a WHERE PostgreSQL adds the SELECT policies, "
                           f"under which {self.actor} sees none of their rows")
        setup, where, params = self._theirs()
        query = sql.SQL("delete from {} t where {}").format(self.rel.ident, where)
        return self._judge("delete", *self._attempt(query, params, setup), what="their rows were deleted")

    def delete_unfiltered(self) -> Outcome:
        """``DELETE FROM t`` without a WHERE: only the DELETE policies apply."""
        op = "delete_unfiltered"
        settled = self._settled_without_where(op, "DELETE")
        if settled:
            return settled
        done = self._try(sql.SQL("delete from {}").format(self.rel.ident), None, self._without_triggers())
        return self._judge_unfiltered(op, done, "their rows were deleted")

    def _without_triggers(self) -> list[str]:
        """For a statement without a WHERE, which also writes the user's own rows: the owner
        turns triggers off for it (foreign keys among them), so that rows of the user's that
        others reference do not stop it before it shows whether it reached theirs. Only a
        superuser may (the throw-away server's connection is one); elsewhere nothing."""
        if not superuser_session(self.conn):
            return []
        return [OWNER_SQL, "select set_config('session_replication_role', 'replica', true)"]

    def _move_sets(self, sample: Mapping[str, Any]) -> list[tuple[str, ...]]:
        """The columns a move sets: all of them together (the tenant column and every foreign
        key's, so that the moved row is consistent), the tenant column alone, each foreign key
        alone (primary key columns stay)."""
        keys = set(self.rel.primary_key)
        # a column that names a user (a foreign key to auth.users, or compared with auth.uid())
        # moves the row to no other tenant: who it is credited to is not whose tenant it is in
        users = {c for k in self.rel.foreign_keys() if k.to_auth_users for c in k.columns}
        users |= {c for p in self.rel.policies for _, _, facts in p.clauses() for c in facts.compared_with_user()}
        users.discard(self.key.column)
        foreign = [tuple(sorted(c for c in k.columns if c not in keys)) for k in self.rel.constraints if k.type == "f"]
        foreign = [s for s in foreign if s and all(c in sample for c in s) and not set(s) & users]
        # the tenant root's own key is its tenant: rewriting it is no move into another's
        tenant = (self.key.column,) if self.key.column and self.key.column in sample and not self._is_root() else ()
        together = tuple(sorted({*tenant, *(c for s in foreign for c in s)}))
        return [s for s in dict.fromkeys([together, tenant, *foreign]) if s]

    def _move_statement(self, columns: Sequence[str], address: str | None) -> sql.Composable:
        query = sql.SQL(
            "update {rel} t set ({cols}) = (select {cols} from jsonb_populate_record(null::{rel}, %(row)s::jsonb))"
        ).format(rel=self.rel.ident, cols=sql.SQL(", ").join(map(sql.Identifier, columns)))
        if address is None:
            return query
        return query + sql.SQL(" where {} = %(ctid)s").format(ADDRESS)

    def move(self) -> Outcome:
        refused = self._refused_by_privileges("move", "UPDATE")
        if refused:
            return refused
        own = self._own()
        if own is None:
            return Outcome("move", None, f"inconclusive: the user's tenant ({self.mine}) has no row to move")
        return self._moves("move", own[0])

    def move_unfiltered(self) -> Outcome:
        """The move without a WHERE: every row the UPDATE policies admit (the SELECT policies
        do not apply to the new rows)."""
        refused = self._refused_by_privileges("move_unfiltered", "UPDATE")
        if refused:
            return refused
        return self._moves("move_unfiltered", None)

    def _moves(self, op: str, address: str | None) -> Outcome:
        """Each set of :meth:`_move_sets` in turn, copied from a row of the other tenant's;
        the first that makes a row theirs (or visible to them) is the verdict."""
        sample = self._their_sample() or {}
        sets = self._move_sets(sample)
        if not sets and self._is_root():
            return Outcome(op, True, "not applicable: the tenant key is this table's own key (a row is its tenant), and "
                           "no foreign key ties a row to another", by="n/a")
        if not sets:
            return Outcome(op, None, "inconclusive: no tenant or foreign key column to move the row with")
        outcomes: list[tuple[tuple[str, ...], Outcome]] = []
        for columns in sets:
            one = self._moved.get(columns) if address is None else None
            if one is not None and not one[0]:
                # The one-row move was not refused by RLS: it went through (judged by its effect) or
                # a constraint stopped it, which stops the move of every row too (that row among them).
                # Only a refusal can differ without a WHERE: the SELECT policies no longer check the new row.
                outcomes.append((columns, Outcome(op, one[1].isolated, f"as the one-row move: {one[1].detail}", by=one[1].by)))
                continue
            params = {"row": to_json({c: sample[c] for c in columns}), **({"ctid": address} if address else {})}
            done = self._try(self._move_statement(columns, address), params, seen=True)
            outcome = self._judge_move(op, columns, done, all_rows=address is None)
            if address is not None:
                self._moved[columns] = (done.sqlstate == "42501", outcome)
            if outcome.isolated is False and done.error is None:
                return outcome  # an effect the other tenant has: the strongest verdict
            outcomes.append((columns, outcome))
        leak = next((o for _, o in outcomes if o.isolated is False), None)
        if leak is not None:
            return leak
        if not any(o.isolated for _, o in outcomes):
            return outcomes[0][1]
        grouped: dict[str, list[str]] = {}  # the same answer for several sets of columns: said once
        for columns, o in outcomes:
            grouped.setdefault(o.detail, []).append(", ".join(columns))
        bys = {o.by for _, o in outcomes}
        by = next((b for b in ("own", "schema", "policy", "privilege", "n/a") if b in bys), "policy")
        return Outcome(op, True, "; ".join(f"{' | '.join(sets)}: {detail}" for detail, sets in grouped.items()), by=by)

    def _judge_move(self, op: str, columns: Sequence[str], done: _Attempt, *, all_rows: bool) -> Outcome:
        what = f"{'rows were' if all_rows else 'an own row was'} moved ({', '.join(columns)})"
        # A policy that lets the tenant column itself be set to theirs has failed, whatever
        # constraint stopped the row after it; a foreign key alone that a constraint stops moved nothing.
        carries_tenant = bool(self.key.column) and self.key.column in columns
        if done.error is not None and done.sqlstate == "42501" and not done.changed:
            return Outcome(op, True, f"refused: {done.error.diag.message_primary}")
        if done.error is not None and done.sqlstate.startswith("23"):
            if carries_tenant:
                return Outcome(op, False, f"{what}: got past RLS and was stopped only by a constraint ({done.error_text()}); "
                               "PostgreSQL checks policies before constraints, so no policy refused it")
            return Outcome(op, True, f"stopped by a constraint ({done.error_text()}); nothing moved", by="schema")
        if done.error is not None and done.sqlstate in RAISED and not done.changed:
            return Outcome(op, True, f"refused by the schema (a trigger or function raised: {done.error.diag.message_primary})",
                           by="schema")
        if done.error is not None:
            return Outcome(op, None, f"inconclusive: the attempt failed with {done.error_text()}")
        if done.changed and self.theirs is None:
            return Outcome(op, False, f"{what}: {done.rowcount} row(s) of tenants rewritten, into tenant "
                           f"{self._their_sample_tenant()}")
        # The verdict rests on an effect the other tenant has: rows they then see. A row that
        # only names their tenant, which they do not see, changes nobody's access.
        grew = done.after[0] > done.before[0]
        counted = f"their rows by {self.key.describe()} went from {done.before[0]} to {done.after[0]}"
        if done.seen_before is not None and done.seen_after is not None:
            if done.seen_after > done.seen_before:
                return Outcome(op, False, f"{what}: the other tenant then sees it ({done.seen_before} rows before, "
                               f"{done.seen_after} after; {counted})")
            if grew:
                return Outcome(op, True, f"{what}: the row now names their tenant ({counted}), but they do not see it "
                               f"({done.seen_after} rows, as before): nobody's access changed", by="own")
        elif grew:  # the other tenant's view could not be counted: their rows by the key say it
            return Outcome(op, False, f"{what}: {done.rowcount} row(s) now count as theirs ({counted})")
        if not done.rowcount:
            return Outcome(op, True, "no row moved: the UPDATE policies admit none", by="policy")
        return Outcome(op, True, f"moved, but the row(s) stay the user's: not theirs by {self.key.describe()}"
                       + (", and the other tenant does not see them" if done.seen_before is not None else ""), by="own")

    def upsert(self) -> Outcome:
        """``INSERT … ON CONFLICT (<key>) DO UPDATE SET <every column> = excluded.<column>``, as
        PostgREST's upsert sends it, with the key of a row of theirs and the rest from one of the
        user's own rows (so that the INSERT policies pass): does it overwrite their row?"""
        refused = self._refused_by_privileges("upsert", "INSERT", "UPDATE")
        if refused:
            return refused
        if self._select_saw_none():
            return Outcome("upsert", True, "reaches none of theirs: ON CONFLICT DO UPDATE checks the existing row against "
                           f"the SELECT policies, under which {self.actor} sees none of their rows")
        theirs = self._their_sample() or {}
        keys = [self.rel.primary_key, *sorted(self.rel.unique_keys, key=len)]  # PostgREST's default: the primary key
        key = next((k for k in keys if k and all(theirs.get(c) is not None for c in k)), None)
        if key is None:
            return Outcome("upsert", True, "no unique key to conflict on: an upsert only inserts (see insert)", by="n/a")
        own = self._own()
        keep = {self.key.column} if self.key.column else set()
        content = dict(own[1]) if own else dict(theirs)
        if not own and self.key.column and self.mine is not None and self.key.column not in key:
            content[self.key.column] = self.mine
        row = base_row(self.rel, content, {c: theirs[c] for c in key}, keep=keep)
        for c in key:  # identity columns too: the conflict is on their key
            row[c] = theirs[c]
        identity = any(col is not None and col.identity for col in map(self.rel.column, row))
        update = [c for c in row if c not in key] or list(key[:1])
        query = sql.SQL(
            "insert into {rel} ({cols}){overriding} select {cols} from jsonb_populate_record(null::{rel}, %(row)s::jsonb)"
            " on conflict ({key}) do update set {sets}"
        ).format(
            rel=self.rel.ident,
            cols=sql.SQL(", ").join(map(sql.Identifier, row)),
            overriding=sql.SQL(" overriding system value" if identity else ""),
            key=sql.SQL(", ").join(map(sql.Identifier, key)),
            sets=sql.SQL(", ").join(sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in update),
        )
        return self._judge("upsert", *self._attempt(query, {"row": to_json(row)}),
                           what=f"their row was overwritten through ON CONFLICT ({', '.join(key)}) DO UPDATE")


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


def anon_reads(rls: Rls, relation: str, key: TenantKey) -> int:
    """How many rows that belong to a tenant (or a user) anon reads from ``relation`` (a
    quoted name, or a set-returning function call), acting as anon in a savepoint that is
    rolled back; 0 when PostgreSQL refuses it."""
    conn = rls.connection
    query = sql.SQL("select count(*) from {} t where ({})::text is not null").format(sql.SQL(relation), key.sql())
    statements = [identity_sql(conn, anon_identity(rls.config.platform), rls.settings_in_effect()), query.as_string(conn)]
    try:
        return rolled_back(conn, statements)[-1].rows[0][0]  # type: ignore[index]
    except psycopg.Error as exc:
        if exc.sqlstate == "42501":
            return 0
        raise


def assert_no_foreign_rows(
    rls: Rls,
    relation: str,
    *,
    user: Principal,
    tenant_column: str | None = None,
    tenant_sql: str | None = None,
) -> int:
    """Every row ``user`` can read from ``relation`` (a table, a view, or a set-returning
    function call such as ``"my_conversations()"``) belongs to ``user``'s tenant. Returns
    how many rows of their own tenant they read."""
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
    return counts.get(mine, 0)


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
