"""Cached plans, measured: does a statement planned for one user serve its values to another?

PostgreSQL evaluates an IMMUTABLE function whose arguments are constants when it plans a
statement (``eval_const_expressions``), and puts the result in the plan. A prepared
statement's generic plan is built at its first EXECUTE (PREPARE only parses and rewrites)
and then reused; changing ``request.jwt.claims`` does not invalidate it (only the role,
which is ``authenticated`` for every user, would). PostgREST prepares its statements on
pooled connections, so a function that reads the caller but is declared IMMUTABLE hands
the first user's value to the next.

The proof, in one round trip inside a savepoint that is rolled back: under
``plan_cache_mode = force_generic_plan`` (local to it), PREPARE the statement, EXECUTE it as
the first user (the plan is built, the value folded), switch to the second user, EXECUTE
again, and run the statement fresh as the second user. A difference between the last two is
the stale value. Prepared statements are not transactional: the statement is DEALLOCATEd in
the same round trip, and again (when it exists) if anything failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from .impersonation import Principal
from .scratch import identity_sql, rolled_back

if TYPE_CHECKING:
    from .protocol import RlsProtocol as Rls

__all__ = ["PLAN_NAME", "StalePlan", "stale_plan"]

PLAN_NAME = "rlscheck_cached_plan"
GENERIC_PLANS_SQL = "select set_config('plan_cache_mode', 'force_generic_plan', true)"
PREPARED_SQL = "select count(*) from pg_prepared_statements where name = %s"


@dataclass(frozen=True)
class StalePlan:
    statement: str
    first: Principal
    second: Principal
    planned: Any  # what the first user got
    stale: Any  # what the second user got from the plan built for the first
    fresh: Any  # what the second user gets from a statement planned for them


def stale_plan(rls: Rls, statement: str, first: Principal, second: Principal) -> StalePlan | None:
    """The values ``statement`` (SQL text, no parameters) gives ``second`` from a plan built
    for ``first`` and from a fresh plan, when they differ; None when they agree or the
    statement cannot run as both."""
    conn = rls.connection
    identities = [rls.identity_for(first), rls.identity_for(second)]
    if None in identities:
        return None
    reset = rls.settings_in_effect()
    one, two = (identity_sql(conn, i, reset) for i in identities if i is not None)
    name = sql.Identifier(PLAN_NAME).as_string(conn)
    statements = [
        GENERIC_PLANS_SQL,
        one,
        f"prepare {name} as {statement}",
        f"execute {name}",
        two,
        f"execute {name}",
        statement,
        f"deallocate {name}",
    ]
    try:
        results = rolled_back(conn, statements)
    except psycopg.Error:
        deallocate(rls)
        return None
    planned, stale, fresh = results[3].rows, results[5].rows, results[6].rows
    if stale == fresh:
        return None
    return StalePlan(statement, first, second, _value(planned), _value(stale), _value(fresh))


def deallocate(rls: Rls) -> None:
    """Drop the probe's prepared statement if a failed probe left it (it outlives rollbacks)."""
    conn = rls.connection
    with rls.safely():
        if conn.execute(PREPARED_SQL, [PLAN_NAME]).fetchone()[0]:  # type: ignore[index]
            conn.execute(sql.SQL("deallocate {}").format(sql.Identifier(PLAN_NAME)))


def _value(rows: list[tuple[Any, ...]] | None) -> Any:
    if not rows:
        return None
    row = rows[0]
    return row[0] if len(row) == 1 else row
