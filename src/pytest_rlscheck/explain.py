"""What EXPLAIN ANALYZE needs besides the statement: the SQL that counts function calls
exactly (``pg_stat_xact_user_functions`` with ``track_functions``), and the patterns that
recognise a function in plan text once the planner has inlined it; and :func:`run_explain`,
which runs them with the statement, rolled back, in one round trip (``Rls.explain``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg import sql

from .impersonation import OWNER, Identity
from .plans import FunctionPattern, Plan
from .scratch import OWNER_SQL, bind, identity_sql, rolled_back, settings_sql, superuser_session

__all__ = ["EXPLAIN_SQL", "FUNCTION_CALLS_SQL", "TRACK_FUNCTIONS_SQL", "function_pattern", "run_explain"]

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


PROBE_SQL = "EXPLAIN (VERBOSE, COSTS OFF, FORMAT JSON) SELECT {}({})"
PROBE_FROM_SQL = " FROM unnest({}) AS {}({})"
ARGUMENT = "rlscheck_arg"
#: an argument of the probe as the plan prints it: ``rlscheck_arg1``, ``"rlscheck_arg"."rlscheck_arg1"``
_ARGUMENT_REF = re.compile(rf'(?:"?{ARGUMENT}"?\.)?"?{ARGUMENT}\d+"?')

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
    # Arguments are columns of a function scan, not NULL constants: a strict function called
    # with a constant NULL is folded to NULL by the planner and would leave nothing to learn.
    arguments = [sql.Identifier(f"{ARGUMENT}{i}") for i in range(1, len(arg_types) + 1)]
    call = sql.SQL(PROBE_SQL).format(sql.Identifier(fn_schema, fn_name), sql.SQL(", ").join(arguments))
    if arg_types:
        call += sql.SQL(PROBE_FROM_SQL).format(
            sql.SQL(", ").join(sql.SQL("NULL::{}[]").format(sql.SQL(t)) for t in arg_types),
            sql.Identifier(ARGUMENT), sql.SQL(", ").join(arguments),
        )
    try:
        with conn.transaction():
            row = conn.execute(call).fetchone()
    except psycopg.Error:  # e.g. a polymorphic argument type
        return by_name
    assert row is not None
    (plan,) = row  # a JSON array of one document (text, where json is not loaded)
    document = (json.loads(plan) if isinstance(plan, str) else plan)[0]
    output = (document["Plan"].get("Output") or [""])[0]
    if not output or by_name.regex.search(output):
        return by_name
    core = _strip(output)
    pieces = _ARGUMENT_REF.split(core)
    if not any(re.search(r"\w", piece) for piece in pieces):  # nothing of the function is left to match
        return by_name
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


def run_explain(
    conn: psycopg.Connection[Any],
    query: str | sql.Composable,
    params: Any,
    *,
    identity: Identity | None,
    in_effect: set[str],
    settings: Mapping[str, str] | None,
    count_calls: bool,
    patterns: Callable[[str], FunctionPattern],
    label: str,
) -> Plan:
    """``EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON)`` of ``query`` as ``identity`` (None or
    OWNER: the connection's own role), with planner ``settings``, in a savepoint rolled
    back; with ``count_calls`` (and a superuser connection) calls are counted exactly too."""
    statements = [OWNER_SQL]  # track_functions needs the connection's own rights
    counting = count_calls and superuser_session(conn)
    if counting:
        statements += [TRACK_FUNCTIONS_SQL, FUNCTION_CALLS_SQL]
    statements += settings_sql(conn, settings or {})
    if identity is not None and identity is not OWNER:
        statements.append(identity_sql(conn, identity, in_effect))
    explain_at = len(statements)
    statements.append(bind(conn, sql.SQL(EXPLAIN_SQL) + (sql.SQL(query) if isinstance(query, str) else query), params))
    if counting:
        statements.append(FUNCTION_CALLS_SQL)
    results = rolled_back(conn, statements, checked=False)  # the user's SQL may not parse
    document = results[explain_at].rows[0][0]  # type: ignore[index]
    if isinstance(document, str):
        document = json.loads(document)
    calls: dict[str, int] = {}
    if counting:
        before = dict(results[2].rows or [])
        after = dict(results[-1].rows or [])
        calls = {name: int(n) - int(before.get(name, 0)) for name, n in after.items() if n != before.get(name, 0)}
    return Plan(
        document,
        statement=query if isinstance(query, str) else query.as_string(conn),
        patterns=patterns,
        exact_calls=calls if counting else None,
        identity=label,
    )
