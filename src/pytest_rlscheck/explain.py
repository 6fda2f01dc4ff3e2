"""What EXPLAIN ANALYZE needs besides the statement: the SQL that counts function calls
exactly (``pg_stat_xact_user_functions`` with ``track_functions``), and the patterns that
recognise a function in plan text once the planner has inlined it. ``Rls.explain`` runs
them, rolled back, in one round trip."""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
from psycopg import sql

from .plans import FunctionPattern

__all__ = ["EXPLAIN_SQL", "FUNCTION_CALLS_SQL", "TRACK_FUNCTIONS_SQL", "function_pattern"]

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
            row = conn.execute(call).fetchone()
    except psycopg.Error:
        return by_name
    assert row is not None
    (plan,) = row  # a JSON array of one document (text, where json is not loaded)
    document = (json.loads(plan) if isinstance(plan, str) else plan)[0]
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
