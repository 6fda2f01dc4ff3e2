"""The verification vocabulary as functions of an ``rls`` object (also its methods).

Each failure says what was expected, what was found, on which object, and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from . import commit_checks
from .catalog import Constraint, Relation, quote
from .errors import RlsAssertionError
from .impersonation import OWNER
from .isolation import TENANT_COLUMN_GUESSES, assert_isolated, assert_no_foreign_rows
from .plans import CallSite, Plan
from .attribution import attribute, plan_catalog, wrap_fix
from .rows import base_row, insert_statement, sample_row, to_json

if TYPE_CHECKING:
    from .protocol import RlsProtocol as Rls

__all__ = [
    "RlsAssertionError",
    "assert_accepted",
    "assert_evaluated_once",
    "assert_index_used",
    "assert_isolated",
    "assert_no_foreign_rows",
    "assert_policies",
    "assert_rejected",
    "assert_rls_enabled",
]

COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")


def _sqlstate(code: str | None) -> str:
    """``23514 check_violation``: the code and its condition name, from psycopg's exception
    class for it (``CheckViolation``; ``InternalError_``, ``…Ext`` where names clash)."""
    try:
        name = psycopg.errors.lookup(code or "").__name__
    except KeyError:
        return code or ""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name.rstrip("_").removesuffix("Ext"))
    return f"{code} {words.lower()}"


# -- RLS and policies -----------------------------------------------------------------


def assert_rls_enabled(rls: Rls, table: str, *, forced: bool | None = None) -> None:
    rel = rls.relation(table)
    if not rel.rls_enabled:
        raise RlsAssertionError(
            f"{rel.qualified}: row level security is off, so every role with a grant on it reads and writes "
            f"every row ({_grants_note(rls, rel)}).\nFix: ALTER TABLE {rel.shown} ENABLE ROW LEVEL SECURITY;"
        )
    if forced is not None and rel.rls_forced != forced:
        state = "forced" if rel.rls_forced else "not forced"
        fix = "FORCE" if forced else "NO FORCE"
        raise RlsAssertionError(
            f"{rel.qualified}: row level security is on but {state} (expected forced={forced}); when not forced, "
            f"the owner ({rel.owner}) bypasses the policies.\nFix: ALTER TABLE {rel.shown} {fix} ROW LEVEL SECURITY;"
        )


def _grants_note(rls: Rls, rel: Relation) -> str:
    rows = rls.owner_fetchall(
        "select r from unnest(array['anon', 'authenticated']) r"
        " where exists (select from pg_roles where rolname = r) and has_table_privilege(r, %s::oid, 'SELECT')",
        [rel.oid],
    )
    roles = [r[0] for r in rows]
    return f"{' and '.join(roles)} can read it" if roles else "no API role has a grant on it today"


def assert_policies(
    rls: Rls,
    table: str,
    *,
    count: int | None = None,
    commands: Iterable[str] | None = None,
    roles: Iterable[str] | None = None,
    permissive: bool | None = None,
) -> None:
    """``count`` policies exactly; each of ``commands`` covered (FOR ALL covers all four);
    every policy limited to ``roles``; every policy permissive (or restrictive)."""
    rel = rls.relation(table)
    policies = rel.policies
    problems: list[str] = []
    fixes: list[str] = []
    if count is not None and len(policies) != count:
        problems.append(f"expected {count} polic{'y' if count == 1 else 'ies'}, found {len(policies)}")
    if commands is not None:
        wanted = [c.upper() for c in commands]
        bad = [c for c in wanted if c not in COMMANDS]
        if bad:
            raise ValueError(f"commands must be among {COMMANDS}, got {bad}")
        missing = [c for c in wanted if not any(p.covers(c) for p in policies)]
        if missing:
            problems.append(f"no policy covers {', '.join(missing)}")
            fixes += [_policy_template(rel, c) for c in missing]
    if roles is not None:
        allowed = set(roles)
        wide = [p for p in policies if not set(p.roles) <= allowed]
        if wide:
            problems.append(
                "policies apply to roles outside " + ", ".join(sorted(allowed)) + ": "
                + "; ".join(f'"{p.name}" TO {", ".join(p.roles)}' for p in wide)
            )
            fixes += [f'ALTER POLICY {quote(p.name)} ON {rel.shown} TO {", ".join(sorted(allowed))};' for p in wide]
    if permissive is not None:
        odd = [p for p in policies if p.permissive != permissive]
        if odd:
            kind = "permissive" if permissive else "restrictive"
            problems.append(f"expected every policy {kind}; not: " + ", ".join(f'"{p.name}"' for p in odd))
    if problems:
        listing = "\n".join(f"  - {p.describe()}" for p in policies) or "  (none)"
        fix = ("\nFix:\n  " + "\n  ".join(fixes)) if fixes else ""
        raise RlsAssertionError(
            f"{rel.qualified}: " + "; ".join(problems) + f".\nIts policies (RLS {'on' if rel.rls_enabled else 'OFF'}):\n"
            f"{listing}{fix}"
        )


def _policy_template(rel: Relation, command: str) -> str:
    clause = {"SELECT": "USING", "DELETE": "USING", "INSERT": "WITH CHECK", "UPDATE": "USING (…) WITH CHECK"}[command]
    column = next((c for c in TENANT_COLUMN_GUESSES if rel.column(c)), "tenant_id")
    return (
        f"CREATE POLICY {quote(f'{rel.name}_{command.lower()}')} ON {rel.shown} FOR {command} TO authenticated "
        f"{clause} ({column} IN (SELECT m.{column} FROM memberships m WHERE m.user_id = (SELECT auth.uid())));"
    )


# -- constraints ----------------------------------------------------------------------


def _try_insert(rls: Rls, rel: Relation, row: Mapping[str, Any]) -> tuple[psycopg.Error | None, dict[str, Any]]:
    """Insert ``row`` (completed from a row of the table) as the owner; always rolled back."""
    conn = rls.connection
    with rls.as_owner(), rls.safely():
        sample = sample_row(conn, rel)
        values = base_row(rel, sample, row)
        query, params = insert_statement(rel, values)
        error = None
        with conn.transaction():
            try:
                with conn.transaction():
                    conn.execute(query, params)
                    commit_checks.check(conn)  # deferred constraints fire as a commit would fire them
            except psycopg.Error as exc:
                error = exc
            raise psycopg.Rollback()
    return error, values


def _check_expression(constraint: Constraint) -> str:
    definition = re.sub(r"\s+NOT VALID$", "", constraint.definition)
    return definition[len("CHECK ") :] if definition.startswith("CHECK ") else definition


def _raising_checks(rls: Rls, rel: Relation, values: Mapping[str, Any]) -> list[tuple[Constraint, psycopg.Error]]:
    """The CHECK constraints that raise an error (instead of returning false) for the row."""
    found = []
    conn = rls.connection
    with rls.as_owner():
        for check in rel.checks():
            query = sql.SQL("select {} from jsonb_populate_record(null::{}, %(row)s::jsonb) as {}").format(
                sql.SQL(_check_expression(check)), rel.ident, sql.Identifier(rel.name)
            )
            try:
                with conn.transaction():
                    conn.execute(query, {"row": to_json(values)})
            except psycopg.Error as exc:
                found.append((check, exc))
    return found


def assert_rejected(
    rls: Rls,
    table: str,
    row: Mapping[str, Any],
    *,
    constraint: str | None = None,
    sqlstate: str = "23514",
) -> None:
    """Inserting ``row`` fails with ``sqlstate`` (a CHECK violation by default), raised by
    ``constraint`` if given. Columns not in ``row`` are filled from a row of the table."""
    rel = rls.relation(table)
    error, values = _try_insert(rls, rel, row)
    expected = f"{_sqlstate(sqlstate)}" + (f" from constraint {constraint}" if constraint else "")
    if error is None:
        checks = "\n".join(f"  - {c.name}: {c.definition}" for c in rel.checks()) or "  (none)"
        raise RlsAssertionError(
            f"{rel.qualified} accepted {to_json(row)}; expected it to be rejected with {expected}.\n"
            f"Its CHECK constraints:\n{checks}"
        )
    got_name = error.diag.constraint_name
    if error.sqlstate == sqlstate and (constraint is None or got_name == constraint):
        return
    got = f"{_sqlstate(error.sqlstate)}" + (f" from constraint {got_name}" if got_name else "")
    message = (
        f"{rel.qualified} rejected {to_json(row)} with {got}: {error.diag.message_primary}; "
        f"expected {expected}."
    )
    if not (error.sqlstate or "").startswith("23"):
        raising = _raising_checks(rls, rel, values)
        if raising:
            check, exc = raising[0]
            message += (
                f"\nThe error is raised from inside constraint {check.name}: {check.definition}\n"
                f"A constraint that raises {_sqlstate(exc.sqlstate)} instead of returning false is a defect: the "
                "insert fails with an error the application cannot map to a validation message, and a NOT VALID/"
                "VALIDATE run aborts.\nFix: guard the cast, e.g. CASE WHEN jsonb_typeof(metadata -> 'x') = 'number' "
                "THEN (metadata -> 'x')::numeric > 0 ELSE false END."
            )
    elif constraint and got_name and got_name != constraint:
        message += f"\nThe row was stopped by {got_name} before {constraint} could be shown to reject it; change the row."
    raise RlsAssertionError(message)


def assert_accepted(rls: Rls, table: str, row: Mapping[str, Any]) -> None:
    """Inserting ``row`` (completed from a row of the table) succeeds."""
    rel = rls.relation(table)
    error, _ = _try_insert(rls, rel, row)
    if error is not None:
        name = error.diag.constraint_name
        definition = next((c.definition for c in rel.constraints if c.name == name), None)
        raise RlsAssertionError(
            f"{rel.qualified} rejected {to_json(row)} with {_sqlstate(error.sqlstate)}: {error.diag.message_primary}"
            + (f"\nConstraint {name}: {definition}" if definition else "")
            + "\nExpected it to be accepted."
        )


# -- plans ------------------------------------------------------------------------------

def assert_evaluated_once(
    rls: Rls,
    statement: str,
    *,
    function: str = "auth.uid",
    as_user: Any = None,
    params: Any = None,
) -> None:
    """No call site of ``function`` runs more than once for ``statement`` — the
    InitPlan-versus-SubPlan check, on the real EXPLAIN ANALYZE of the statement."""
    plan = rls.explain(statement, params, as_user=as_user)
    sites = plan.call_sites(function)
    exact = plan.exact_calls(function)
    if not sites and not exact:
        raise RlsAssertionError(
            f"{function}() does not appear in the plan of {statement!r}, so there is nothing to count. If the "
            "policies call it through another function, pass function='schema.that_function'.\n"
            f"Plan:\n{_indent(plan.render())}"
        )
    repeated = [s for s in sites if s.evaluations > 1]
    if exact is not None and exact > max(len(sites), 1) and not repeated:
        raise RlsAssertionError(
            f"{function}() ran {exact} times for one statement (counted by PostgreSQL) at {len(sites)} call "
            f"site(s) of the plan; expected at most once per site.\nPlan:\n{_indent(plan.render())}"
        )
    if repeated:
        raise RlsAssertionError(_repeated_message(rls, plan, function, repeated, exact))


def _repeated_message(rls: Rls, plan: Plan, function: str, repeated: list[CallSite], exact: int | None) -> str:
    total = sum(s.evaluations for s in plan.call_sites(function))
    who = f" as {plan.identity}" if plan.identity else ""
    lines = [
        f"{function}() ran {total} times for one statement{who}; expected each call site to run once "
        f"(an InitPlan), not once per row.",
        f"  statement: {plan.statement}",
    ]
    if exact is not None:
        lines.append(f"  PostgreSQL counted {exact} calls (track_functions).")
    catalog = plan_catalog(rls, plan)
    fixes: list[str] = []
    for site in repeated:
        lines.append(f"  {site.describe()}")
        lines.append(f"      {site.field}: {_shorten(site.expression)}")
        found = attribute(catalog, site, function, plan.statement, plan)
        if found is not None:
            rel, pol, call = found
            via = f" (through {call}())" if call != function else ""
            lines.append(f"      from policy \"{pol.name}\" on {rel.qualified}{via}: {pol.describe()}")
            fixes.append(wrap_fix(rel, pol, call))
    lines.append(f"Fix: wrap the call so that PostgreSQL runs it once per statement: (select {function}())")
    lines += [f"  {fix}" for fix in dict.fromkeys(fixes)]
    return "\n".join(lines)


def assert_index_used(
    rls: Rls, statement: str, index: str, *, as_user: Any = None, params: Any = None, force: bool = False
) -> None:
    """The planner uses ``index`` for ``statement`` (run with EXPLAIN ANALYZE), and uses it
    to narrow the rows read — an index read whole, with no condition, does not count.
    With ``force=True`` sequential scans are priced out first: that proves the index *can*
    serve the query on a table too small for the planner to bother with it."""
    settings = {"enable_seqscan": "off"} if force else None
    plan = rls.explain(statement, params, as_user=as_user, settings=settings)
    bare = index.rpartition(".")[2]
    verdict = _index_verdict(rls, plan, bare)
    if verdict is None:
        return
    exists = rls.owner_fetchall("select to_regclass(%s) is not null", [index])[0][0]
    if not exists:
        hint = f"The index {index} does not exist."
    elif plan.identity and _index_verdict(rls, rls.explain(statement, params, as_user=OWNER, settings=settings), bare) is None:
        hint = (
            f"As the table owner (no RLS) the same statement does use {bare}: row level security is what stops it. "
            "PostgreSQL applies the policy before any condition that is not LEAKPROOF, so such conditions cannot be "
            f"index conditions. Not leakproof in {bare}: {_not_leakproof(rls, bare) or 'its expressions'}.\n"
            "Fix: compare plain columns instead (a stored generated column for the expression, indexed), or run "
            "this query with the service_role key if it is a backend job."
        )
    else:
        hint = (
            "If the tables are small the planner may rightly prefer a sequential scan: seed realistic volumes and "
            "ANALYZE; otherwise compare the query's WHERE/ORDER BY with the index's columns and expressions "
            "(an expression index matches only the same expression)."
        )
    scans = [n.label for n in plan.nodes() if n.relation]
    raise RlsAssertionError(
        f"the plan of {statement!r}{' as ' + plan.identity if plan.identity else ''} {verdict}; it scans: "
        f"{', '.join(scans) or '(no relation)'}.\n{hint}\nPlan:\n{_indent(plan.render())}"
    )


def _index_verdict(rls: Rls, plan: Plan, index: str) -> str | None:
    """None when the plan narrows rows with ``index``; else what is wrong."""
    nodes = [n for n in plan.nodes() if n.index_name == index]
    if not nodes:
        used = sorted(set(plan.indexes_used))
        return f"does not use {index}" + (f" (indexes used: {', '.join(used)})" if used else "")
    for node in nodes:
        if "Index Cond" in node.expressions or "Order By" in node.expressions:
            return None
        read = (node.rows + node.removed_by_filter) * node.loops
        table_rows = rls.owner_fetchall(
            "select greatest(c.reltuples, 1) from pg_index i join pg_class c on c.oid = i.indrelid"
            " where i.indexrelid = to_regclass(%s)",
            [index],
        )
        if table_rows and read < 0.9 * float(table_rows[0][0]):
            return None
    return f"reads {index} whole, without an index condition ({nodes[0].label}, rows={nodes[0].rows:g})"


NOT_LEAKPROOF_SQL = """
select distinct p.oid::regprocedure::text
from pg_index i,
     regexp_matches(coalesce(i.indexprs::text, '') || coalesce(i.indpred::text, ''),
                    ':(?:funcid|opfuncid) (\\d+)', 'g') as m(ids)
join pg_proc p on p.oid = m.ids[1]::oid
where i.indexrelid = to_regclass(%(index)s) and not p.proleakproof
order by 1
"""


def _not_leakproof(rls: Rls, index: str) -> str:
    """The functions in the index's expressions and predicate that are not LEAKPROOF."""
    return ", ".join(r[0] for r in rls.owner_fetchall(NOT_LEAKPROOF_SQL, {"index": index}))


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _shorten(text: str, width: int = 200) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
