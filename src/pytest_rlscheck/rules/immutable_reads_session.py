"""immutable-reads-session: a function declared IMMUTABLE that reads the session (the
caller through auth.uid()/auth.jwt()/the claims, current_setting(), current_user, the time)
or a table. PostgreSQL folds its value into the plan; a cached plan (PostgREST's prepared
statements, on pooled connections) then serves one user's value to the next.

Candidates come from ``pg_proc.provolatile`` and the body facts, for functions the policies
call without row arguments (so that the call can be folded) or that the API can call; the
finding is measured by :mod:`pytest_rlscheck.plancache`: a statement planned for one
principal and executed for another returns other values than a fresh statement."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from ..catalog import Function, Relation
from ..findings import Finding, Severity
from ..plancache import StalePlan, stale_plan
from . import API_ROLES, Measurement, SweepContext, dynamic_rule, ref
from .tenant_leak import pair

RULE = "immutable-reads-session"
#: What a statement over a table returns, to compare: its rows' count and addresses.
TABLE_STATEMENT = "select count(*), coalesce(sum(hashtext(t.tableoid::text || ':' || t.ctid::text)::bigint), 0) from {} t"


def reads(fn: Function) -> list[str]:
    """What the body reads besides its arguments, as a finding names it."""
    facts = fn.facts
    calls = [
        f"{name.removeprefix('pg_catalog.')}()" if "." in name and name != "request.jwt.claims" else name
        for name in sorted(facts.session_reads)
    ]
    tables = sorted(facts.relations) + [f"relation {oid}" for oid in sorted(facts.relation_oids)]
    return calls + [f"table {t}" for t in tables]


def folded_in(ctx: SweepContext, fn: Function) -> list[Relation]:
    """The tables whose policies call ``fn`` with constant arguments: where it is folded."""
    return [
        rel for rel in ctx.tables()
        if rel.rls_enabled and any(
            call.function == fn.qualified and not call.row_arguments
            for p in rel.policies for _, _, facts in p.clauses() for call in facts.calls
        )
    ]


def _callable(ctx: SweepContext, fn: Function) -> bool:
    return fn.schema in ctx.schemas and bool(set(fn.executable_by) & {*API_ROLES, "public"})


def _applies(ctx: SweepContext, kind: str, fn: Any) -> bool:
    if fn.volatility != "i" or fn.returns_set or fn.result in ("trigger", "event_trigger") or not reads(fn):
        return False  # a set-returning function is never folded
    return _callable(ctx, fn) or bool(folded_in(ctx, fn))


@dynamic_rule(RULE, Severity.ERROR, "function", "an IMMUTABLE function reads the session: cached plans keep one user's value",
              applies=_applies, categories=("SECURITY", "CORRECTNESS"))
def run(m: Measurement) -> tuple[list[Finding], dict[str, Any]]:
    fn = next(f for f in m.ctx.catalog.functions if f.oid == m.check.oid)
    users = pair(list(m.principals), per_user=True)
    if users is None:
        return [], {}
    conn = m.rls.connection
    statements = [
        sql.SQL(TABLE_STATEMENT).format(rel.ident).as_string(conn)
        for rel in folded_in(m.ctx, fn) if rel.granted(users[0].role, "SELECT")
    ]
    if not fn.argument_types:
        statements.append(sql.SQL("select ({}())::text").format(sql.Identifier(fn.schema, fn.name)).as_string(conn))
    for statement in statements:
        for first, second in (users, users[::-1]):
            stale = stale_plan(m.rls, statement, first, second)
            if stale is not None:
                return [_finding(fn, stale)], {}
    return [], {}


def _shown(value: Any, table: bool) -> str:
    return f"{value[0]:,} row(s)" if table and isinstance(value, tuple) else repr(value)


def _finding(fn: Function, stale: StalePlan) -> Finding:
    table = not stale.statement.startswith("select (")
    same = " (the first user's rows)" if table and stale.stale == stale.planned else ""
    return Finding(
        RULE,
        Severity.ERROR,
        ref(fn),
        f"{fn.qualified} is IMMUTABLE but reads {', '.join(reads(fn))}: PostgreSQL evaluates it once, when it plans a "
        "statement, and a cached plan keeps the value (PostgREST prepares its statements on pooled connections). "
        f"Measured: `{stale.statement}` prepared and executed as {stale.first.sub} (giving "
        f"{_shown(stale.planned, table)}), then executed as {stale.second.sub}, gave {_shown(stale.stale, table)}{same}; "
        f"a fresh statement as {stale.second.sub} gives {_shown(stale.fresh, table)}"
        + (", other rows." if table else "."),
        f"ALTER FUNCTION {fn.shown} STABLE;",
        details={"statement": stale.statement},
    )
