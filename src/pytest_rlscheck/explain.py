"""Running EXPLAIN ANALYZE for the plan checks: in a savepoint that is rolled back, with
exact call counts from ``pg_stat_xact_user_functions`` where PostgreSQL can give them, and
with the patterns that recognise a function in plan text once it has been inlined."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from .plans import FunctionPattern

__all__ = ["EXPLAIN_SQL", "explain_json", "function_pattern"]

EXPLAIN_SQL = "EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON) "
TRACK_FUNCTIONS_SQL = "select set_config('track_functions', 'all', true)"
FUNCTION_CALLS_SQL = (
    "select s.schemaname || '.' || s.funcname, sum(s.calls)::bigint"
    " from pg_stat_xact_user_functions s group by 1"
)
FUNCTION_LOOKUP_SQL = """
select n.nspname, p.proname,
       array(select format_type(t, null) from unnest(p.proargtypes) t)::text[],
       l.lanname not in ('internal', 'c')
from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang
where p.proname = %(name)s and (%(schema)s::text is null or n.nspname = %(schema)s)
  and p.prokind = 'f'
order by n.nspname = any(current_schemas(false)) desc, p.pronargs
limit 1
"""


def explain_json(
    conn: psycopg.Connection[Any],
    statement: str | sql.Composable,
    params: Sequence[Any] | Mapping[str, Any] | None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Run ``EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON)``; return the plan and the calls of
    every function PostgreSQL counted (``schema.name``: calls) during the statement.

    The caller runs this inside a savepoint it rolls back, with the identity to test."""
    query = sql.SQL(EXPLAIN_SQL) + (sql.SQL(statement) if isinstance(statement, str) else statement)
    before = dict(conn.execute(FUNCTION_CALLS_SQL).fetchall())
    row = conn.execute(query, params).fetchone()
    after = dict(conn.execute(FUNCTION_CALLS_SQL).fetchall())
    assert row is not None
    plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    calls = {name: int(after[name]) - int(before.get(name, 0)) for name in after if after[name] != before.get(name, 0)}
    return plan, calls


def enable_call_counting(conn: psycopg.Connection[Any]) -> bool:
    """``track_functions = all`` for the transaction; False without the rights for it."""
    try:
        with conn.transaction():
            conn.execute(TRACK_FUNCTIONS_SQL)
        return True
    except psycopg.errors.InsufficientPrivilege:
        return False


_CAST = re.compile(r"^(.*\))::[\w .\"\[\]]+$", re.S)


def function_pattern(conn: psycopg.Connection[Any], name: str) -> FunctionPattern:
    """Learn what ``name`` looks like in a plan by asking PostgreSQL to plan a call of it.

    A function the planner inlines (a simple SQL function such as ``auth.uid()``) shows
    up as its body — ``COALESCE(NULLIF(current_setting('request.jwt.claim.sub'...``; any
    other function shows up by name."""
    schema, _, bare = name.rpartition(".")
    row = conn.execute(FUNCTION_LOOKUP_SQL, {"name": bare, "schema": schema or None}).fetchone()
    if row is None:
        return FunctionPattern.by_name(name)  # not defined (yet)
    fn_schema, fn_name, arg_types, user_code = row
    by_name = FunctionPattern.by_name(name, tracked=user_code, qualified=f"{fn_schema}.{fn_name}")
    call = sql.SQL("EXPLAIN (VERBOSE, COSTS OFF, FORMAT JSON) SELECT {}({})").format(
        sql.Identifier(fn_schema, fn_name),
        sql.SQL(", ").join(sql.SQL("NULL::{}").format(sql.SQL(t)) for t in arg_types),
    )
    try:
        with conn.transaction():
            plan = conn.execute(call).fetchone()
    except psycopg.Error:
        return by_name
    assert plan is not None
    document = plan[0][0] if not isinstance(plan[0], str) else json.loads(plan[0])[0]
    output = (document["Plan"].get("Output") or [""])[0]
    if not output or by_name.regex.search(output):
        return by_name
    core = _strip(output)
    pieces = re.split(r"NULL::[\w .\"\[\]]+", core)
    regex = ".+?".join(re.escape(piece) for piece in pieces)
    return FunctionPattern(name, re.compile(regex), True, core, False, f"{fn_schema}.{fn_name}")


def _strip(expression: str) -> str:
    """Drop the casts and parentheses around an expression: ``(X)::uuid`` → ``X``."""
    text = expression.strip()
    while True:
        cast = _CAST.match(text)
        if cast and _balanced(cast.group(1)):
            text = cast.group(1)
        elif text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
            text = text[1:-1].strip()
        else:
            return text


def _balanced(text: str) -> bool:
    depth = 0
    quoted = False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted:
            depth += char == "("
            depth -= char == ")"
            if depth < 0:
                return False
    return depth == 0
