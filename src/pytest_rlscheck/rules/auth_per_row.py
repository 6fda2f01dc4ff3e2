"""auth-per-row: a call of auth.*(), current_setting() or a function a policy calls that
runs once per row.

Measured, not guessed: as an authenticated user, the plain SELECT (and the UPDATE and
DELETE forms) of the table run under EXPLAIN ANALYZE, and the plan says how many times
each call ran; PostgreSQL counts the calls of functions it does not inline
(``track_functions``). A call text matching would flag but the plan runs once — inside an
uncorrelated, hashed SubPlan, or wrapped as ``(select auth.jwt() ->> 'role')`` — is not a
finding. A call that takes nothing of the row runs once in an index condition and once per
row in a filter: the SELECT is measured again with the other scan forced, and a call per row
in either plan is a finding.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg
from psycopg import sql

from ..catalog import Catalog, Policy, Relation, quote
from ..findings import Finding, Severity
from ..attribution import attribute_all, plan_catalog, wrap_fix
from ..plans import FunctionPattern, Plan
from ..policy_model import unwrapped_spans
from ..remedies import condition
from ..tenancy import updatable_column
from . import Measurement, dynamic_rule, ref

if TYPE_CHECKING:
    from ..protocol import RlsProtocol as Rls

RULE = "auth-per-row"
#: who the plans are measured as when the project configures no principal
ANYONE = "00000000-0000-4000-8000-00000000a11c"


def _table_columns(facts: Any) -> dict[str, Any]:
    measured = facts.get("auth.uid") or {}
    return {"auth_uid_evaluations": measured.get("auth.uid"), "rows": measured.get("rows")} if measured else {}


@dynamic_rule(RULE, Severity.WARN, "table",
              "a call of auth.*(), current_setting() or a function a policy calls that runs once per row",
              categories=("PERFORMANCE",), table_columns=_table_columns)
def run(m: Measurement) -> tuple[list[Finding], dict[str, Any]]:
    rel = m.ctx.catalog.relation(m.check.oid)
    if not rel.rls_enabled or not rel.policies:
        return [], {"auth.uid": None}
    user = m.principals[0] if m.principals else m.rls.user(ANYONE)
    if "auth patterns" not in m.memo:  # what auth.*() looks like in plans, once per sweep
        m.memo["auth patterns"] = functions(m.rls)
    called = called_functions(m.rls, rel, m.memo.setdefault("function patterns", {}))
    findings, measured = measure(m.rls, rel, user, m.memo["auth patterns"], m.ctx.catalog, called)
    return findings, {"auth.uid": measured}

AUTH_FUNCTIONS = ("auth.uid", "auth.jwt", "auth.role", "auth.email")
EXISTING_SQL = "select p.proname from pg_proc p where p.pronamespace = to_regnamespace('auth') and p.pronargs = 0"


def functions(rls: Rls) -> list[FunctionPattern]:
    """The auth functions that exist, and current_setting() outside their inlined bodies."""
    names = {r[0] for r in rls.owner_fetchall(EXISTING_SQL)} if _has_auth(rls) else set()
    patterns = [rls.function_pattern(f) for f in AUTH_FUNCTIONS if f.split(".")[1] in names]
    bodies = tuple(re.compile(p.regex.pattern) for p in patterns if p.inlined)
    setting = FunctionPattern.by_name("current_setting")
    patterns.append(FunctionPattern(setting.name, setting.regex, False, setting.shown_as, exclude=bodies))
    return patterns


def _has_auth(rls: Rls) -> bool:
    return bool(rls.owner_fetchall("select to_regnamespace('auth') is not null")[0][0])


def statements(rel: Relation) -> list[tuple[str, sql.Composable]]:
    column = sql.Identifier(updatable_column(rel))
    return [
        ("select", sql.SQL("select * from {}").format(rel.ident)),
        ("update", sql.SQL("update {} set {} = {}").format(rel.ident, column, column)),
        ("delete", sql.SQL("delete from {}").format(rel.ident)),
    ]


#: Planner settings that leave a sequential scan as the only way to read a table: the plan a
#: table gets at another size, or with another filter, when the seed's plan is an index scan.
SEQUENTIAL = {"enable_indexscan": "off", "enable_bitmapscan": "off", "enable_indexonlyscan": "off"}
#: ... and the opposite, where the seed's plan is a sequential scan and an index can serve.
INDEXED = {"enable_seqscan": "off"}
SCAN_KINDS = {
    "Seq Scan": "sequential scan", "Index Scan": "index scan", "Index Only Scan": "index-only scan",
    "Bitmap Heap Scan": "bitmap index scan", "Tid Scan": "TID scan",
}
FUNCTION_SQL = """
select p.oid::regprocedure::text, p.provolatile, l.lanname
from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang
where n.nspname = %s and p.proname = %s and p.prokind = 'f'
order by p.pronargs
limit 1
"""
VOLATILITY = {"v": "VOLATILE", "s": "STABLE", "i": "IMMUTABLE"}
BUILT_IN = ("pg_catalog", "information_schema")


def called_functions(rls: Rls, rel: Relation, known: dict[str, FunctionPattern]) -> list[FunctionPattern]:
    """The functions the policies of ``rel`` call outside ``(select ...)`` that PostgreSQL
    counts calls of (plpgsql, SQL it does not inline: ``track_functions``), other than
    auth.*(): ``known`` caches the patterns for the sweep."""
    names = {
        call.function
        for policy in rel.policies
        for call in policy.using_facts.calls
        if not call.once and call.function.partition(".")[0] not in BUILT_IN and call.function not in AUTH_FUNCTIONS
    }
    patterns = []
    for name in sorted(names):
        if name not in known:
            known[name] = rls.function_pattern(name)
        if known[name].tracked and not known[name].inlined:
            patterns.append(known[name])
    return patterns


def per_row_capable(rel: Relation, name: str) -> bool:
    """A SELECT policy calls ``name`` per row with nothing of the row: once in an index
    condition, once per row in a filter — the count depends on the plan."""
    return any(
        not call.row_arguments
        for policy in rel.policies
        if policy.covers("SELECT")
        for call in policy.using_facts.unwrapped(name)
    )


def measure(
    rls: Rls, rel: Relation, principal: Any, patterns: list[FunctionPattern], known: Catalog | None = None,
    functions_called: Sequence[FunctionPattern] = (),
) -> tuple[list[Finding], dict[str, Any]]:
    """Findings for ``rel`` and what was measured (evaluations of auth.uid() per statement).

    ``patterns``: :func:`functions` of this database, computed once per sweep; ``known``: the
    sweep's catalog, which names the policies of a finding without reading the catalog again;
    ``functions_called``: :func:`called_functions` of ``rel``, counted exactly.

    The SELECT runs a second time with the opposite scan forced (a sequential scan where the
    seed's plan reads an index, an index where it reads the table), when a SELECT policy calls
    one of the functions per row with nothing of the row: such a call runs once in an index
    condition and once per row in a filter, and the seed's size picks one of the two."""
    identity = rls.identity_for(principal)
    findings: list[Finding] = []
    rows = 0
    measured: dict[str, Any] = {"rows": rows, "auth.uid": {}}
    every = [*patterns, *functions_called]
    tracked = {p.name for p in functions_called}
    for kind, statement in statements(rel):
        try:
            plan = rls.explain(statement, as_user=identity, count_calls=bool(tracked))
        except psycopg.Error as exc:  # e.g. no UPDATE privilege: nothing runs, nothing to count
            measured["auth.uid"][kind] = None
            measured.setdefault("skipped", {})[kind] = f"{exc.sqlstate}: {exc.diag.message_primary}"
            continue
        forced = None
        if kind == "select":  # rows the table's scan examined: what the counts were measured on
            rows = measured["rows"] = _rows_examined(plan, rel)
            if any(per_row_capable(rel, p.name) for p in every):
                forced = _forced(rls, statement, identity, plan, rel, bool(tracked))
                if forced is not None:
                    measured["forced"] = {"settings": forced.settings, "scan": forced.scan}
        catalog = None
        for pattern in every:
            rls.register_function_pattern(pattern)  # current_setting: minus the auth.* bodies
            sites = plan.call_sites(pattern.name)
            total = _count(plan, pattern, sites)
            if pattern.name == "auth.uid":
                measured["auth.uid"][kind] = total
            repeated = [s for s in sites if s.evaluations > 1] if total > 1 else []
            worse: tuple[int, list[Any]] | None = None  # in the forced plan: the count, the sites per row
            if forced is not None and per_row_capable(rel, pattern.name):
                forced_sites = forced.plan.call_sites(pattern.name)
                worse = (_count(forced.plan, pattern, forced_sites), [s for s in forced_sites if s.evaluations > 1])
            if not repeated and not (worse and worse[0] > 1 and worse[1]):
                continue
            catalog = catalog or plan_catalog(rls, plan, known)
            statement_text = statement.as_string(rls.connection)
            blamed, blamed_plan = (repeated, plan) if repeated else (worse[1], forced.plan)  # type: ignore[index,union-attr]
            attributed = list(dict.fromkeys(
                found for s in blamed for found in attribute_all(catalog, s, pattern.name, statement_text, blamed_plan)
            ))
            fixes = list(dict.fromkeys(_fix(rls, found, tracked, known) for found in attributed))
            seed_scan = _scan_kind(plan, rel)
            counted = " (counted by PostgreSQL)" if plan.exact_calls(pattern.name) is not None else ""
            if repeated:
                where = "; ".join(f"{s.node.label} ({s.field}): {_at_most(s, counted)}" for s in repeated)
                message = (
                    f"{pattern.name}() ran {_times(total)}{counted} for one `{statement_text}` "
                    f"(measured on {rows:,} rows, as {plan.identity}): {where}. It should run once per statement."
                )
                if worse is not None and forced is not None:
                    message += (
                        f" In {_article(forced.scan)} (forced with {_settings(forced.settings)}) it ran {_times(worse[0])}: "
                        "the count depends on the plan the table's size picks; wrapped, it is one in every plan."
                    )
                evaluations = total
            else:
                assert worse is not None and forced is not None
                once = "; ".join(f"{s.node.label} ({s.field})" for s in sites if s.evaluations) or "no call"
                where = "; ".join(f"{s.node.label} ({s.field}): {_at_most(s, counted)}" for s in worse[1])
                examined = _rows_examined(forced.plan, rel)
                each = "once per row" if worse[0] == examined else "per row"
                message = (
                    f"{pattern.name}() ran {_times(total)}{counted} per query in the {seed_scan} the seed data gets "
                    f"({once}), and {worse[0]:,} times per query ({each}) when the planner picks "
                    f"{_article(forced.scan)}, e.g. at another table size or with another filter (as {plan.identity}, "
                    f"on {rows:,} rows read in the seed's plan and {examined:,} in the forced one, "
                    f"{_settings(forced.settings)}: "
                    f"{where}). It should run once per statement in every plan."
                )
                evaluations = worse[0]
            findings.append(
                Finding(
                    RULE,
                    Severity.WARN,
                    ref(rel),
                    message,
                    "\n".join(fixes) or f"Wrap the call: (select {pattern.name}())",
                    details={
                        "statement": kind, "function": pattern.name, "evaluations": evaluations, "rows": rows,
                        "fixed_policies": list(dict.fromkeys(p.name for _, p, _ in attributed)),
                        "seed_plan": {"scan": seed_scan, "evaluations": total},
                        **({"forced_plan": {"scan": forced.scan, "settings": forced.settings, "evaluations": worse[0]}}
                           if worse is not None and forced is not None else {}),
                    },
                )
            )
    if rows < 2 and not findings:
        findings += unmeasured(rel, rows)
    return _dedupe(findings), measured


def unmeasured(rel: Relation, rows: int) -> list[Finding]:
    """Where the seed leaves too few rows to count calls: the per-row calls the policy model
    sees (auth.*() or current_setting() outside ``(select ...)`` in a USING), at warn — the
    cost is certain from the tree, only its size is not measured."""
    unwrapped = [
        (policy, name)
        for policy in rel.policies
        for name in dict.fromkeys(
            [c.function for c in policy.using_facts.unwrapped(*AUTH_FUNCTIONS, "pg_catalog.current_setting")]
            # a project's function passed the row's columns (is_member(team_id)): once per row, wrapped or not
            + [c.function for c in policy.using_facts.calls
               if not c.once and c.row_columns and c.function.partition(".")[0] not in (*BUILT_IN, "auth", "storage")])
    ]
    if not unwrapped:
        return []
    listed = "; ".join(f'policy "{p.name}" ({p.command}) calls {name.removeprefix("pg_catalog.")}()' for p, name in unwrapped)
    return [
        Finding(
            RULE,
            Severity.WARN,
            ref(rel),
            f"Not measured ({rows} row(s) to measure on), read from the policies: {listed} outside (select ...), "
            "so PostgreSQL evaluates it once for every row a query reads instead of once per statement. "
            "Seed a few rows (or let the sweep synthesize them) to have it measured.",
            "\n".join(dict.fromkeys(wrap_fix(rel, p, name) for p, name in unwrapped)),
            details={"policies": sorted({p.name for p, _ in unwrapped}), "measured": False},
        )
    ]


def _count(plan: Plan, pattern: FunctionPattern, sites: list[Any]) -> int:
    """Calls of ``pattern`` in ``plan``: counted by PostgreSQL where it can (a function it
    does not inline, with track_functions), else read from where the call sits."""
    exact = plan.exact_calls(pattern.name)
    if exact is not None and not any(s.evaluations > 1 for s in sites):
        return min(exact, 1)  # run once; the planner may call a STABLE function once more to estimate
    return exact if exact is not None else sum(s.evaluations for s in sites)


class Forced(NamedTuple):
    """The statement planned with the other kind of scan forced."""

    plan: Plan
    settings: dict[str, str]
    scan: str  # "sequential scan", "index scan"...


def _forced(
    rls: Rls, statement: sql.Composable, identity: Any, plan: Plan, rel: Relation, count_calls: bool
) -> Forced | None:
    """The statement with the other kind of scan forced, its settings and the scan it got;
    None when the planner has no other plan (no index serves the policy) or it fails."""
    seed_scan = _scan_kind(plan, rel)
    settings = INDEXED if seed_scan == SCAN_KINDS["Seq Scan"] else SEQUENTIAL
    try:
        forced = rls.explain(statement, as_user=identity, settings=settings, count_calls=count_calls)
    except psycopg.Error:
        return None
    scan = _scan_kind(forced, rel)
    return Forced(forced, settings, scan) if scan != seed_scan else None


def _scan_kind(plan: Plan, rel: Relation) -> str:
    """How the statement reads the table itself: "sequential scan", "index scan"..."""
    own = [n for n in _outer_nodes(plan.root) if n.relation and n.node_type.endswith("Scan")]
    scans = [n for n in own if n.relation == rel.qualified] or own
    kinds = [SCAN_KINDS.get(n.node_type, n.node_type.lower()) for n in scans]
    return " and ".join(dict.fromkeys(kinds)) or "plan"


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n:,} times"


def _at_most(site: Any, counted: str) -> str:
    """What the plan says of one call site: an upper bound where PostgreSQL counted the calls."""
    return f"at most {site.evaluations:,}" if counted else f"{site.evaluations:,}"


def _article(scan: str) -> str:
    return f"{'an' if scan[:1] in 'aeiou' else 'a'} {scan}"


def _settings(settings: dict[str, str]) -> str:
    return ", ".join(f"{name} = {value}" for name, value in settings.items())


def _fix(rls: Rls, found: tuple[Relation, Policy, str], tracked: set[str], known: Catalog | None = None) -> str:
    """The ALTER POLICY that wraps the call; for a user function (``tracked``) that takes the
    row's columns, the rewrite with the condition the schema writes elsewhere for that column
    (computed once per statement), or, when there is none, the set-returning function to write
    (in comments); and ALTER FUNCTION ... STABLE for a VOLATILE one."""
    rel, policy, function = found
    if function not in tracked:
        return wrap_fix(rel, policy, function)
    schema, _, name = function.rpartition(".")
    row = rls.owner_fetchall(FUNCTION_SQL, [schema, name])
    signature, volatility, language = row[0] if row else (function + "()", "v", "")
    shown = sql.Identifier(schema, name).as_string(rls.connection) + signature[signature.index("("):]
    lines = []
    columns = [c for _, _, facts in policy.clauses() for call in facts.unwrapped(function) for c in call.row_columns]
    if columns:
        column = sql.Identifier(columns[0]).as_string(rls.connection)
        helper = sql.Identifier(schema, f"{name}_set").as_string(rls.connection)
        tables = [r for r in known.relations if r.kind in ("r", "p")] if known is not None else [rel]
        cond = condition(None, rel, column=columns[0], per_row=False, tables=tables)
        in_schema = _set_rewrite(policy, function, lambda c: cond.sql, set(columns)) if cond.found else None
        lines.append(f"-- {shown} takes the row's {column}: it runs once per row in every plan, wrapped or not.")
        if in_schema is not None:
            lines.append(
                f"-- The schema limits {column} elsewhere with a condition PostgreSQL computes once per statement; "
                f"it replaces the call (check that it admits the rows {shown.split('(')[0]} admits):"
            )
            lines.append(cond.comment)
            lines.append(f"ALTER POLICY {quote(policy.name)} ON {rel.shown} {in_schema};")
        else:
            rewritten = _set_rewrite(policy, function, lambda c: f"{quote(c)} IN (SELECT {helper}())", set(columns))
            lines.append(
                f"-- Write a STABLE set-returning function {helper}() that returns the {column} values it accepts "
                "for the caller (SECURITY DEFINER with SET search_path = '' where it reads tables under RLS), and "
                "compare the column with that set, which PostgreSQL computes once per statement:"
            )
            if rewritten is not None:
                lines.append(f"--   ALTER POLICY {quote(policy.name)} ON {rel.shown} {rewritten};")
            else:  # an argument that is not one of the row's columns: say what to replace
                lines.append(
                    f"--   in policy {quote(policy.name)} on {rel.shown}, replace each call of {shown.split('(')[0]} "
                    f"on a column by that column IN (SELECT {helper}()), and keep the rest of the expression as it is."
                )
    else:
        lines.append(wrap_fix(rel, policy, function))
    if volatility == "v":
        lines.append(
            f"-- {shown} is VOLATILE ({language}): PostgreSQL calls it again for every row it filters and never "
            "uses it in an index condition. If it only reads, declare it so:"
        )
        lines.append(f"ALTER FUNCTION {shown} STABLE;")
    return "\n".join(lines)


def _set_rewrite(policy: Policy, function: str, rewritten: Callable[[str], str], columns: set[str]) -> str | None:
    """``USING (...)`` / ``WITH CHECK (...)`` with each per-row call ``f(column)`` replaced by
    ``rewritten(column)`` (``column IN (SELECT helper())``) and nothing else changed; None when
    a call's argument is not exactly one of the row's ``columns`` (the rewrite would not mean
    the same)."""
    clauses = []
    for label, text, _ in policy.clauses():
        out, last = [], 0
        for start, end in unwrapped_spans(text, function):
            call = text[start:end]
            argument = call[call.index("(") + 1 : call.rindex(")")].strip()
            column = next((c for c in columns if argument in (c, quote(c))), None)
            if column is None:
                return None
            whole = text[:start].strip() == "" and text[end:].strip() == ""
            rewrite = rewritten(column)
            out.append(text[last:start] + (rewrite if whole else f"({rewrite})"))
            last = end
        clauses.append(f"{label} ({''.join(out) + text[last:]})")
    return " ".join(clauses)


def _rows_examined(plan: Any, rel: Relation) -> int:
    """Rows the statement's own scans of the table (or of its partitions) looked at."""
    own = [n for n in _outer_nodes(plan.root) if n.relation]
    scans = [n for n in own if n.relation == rel.qualified] or own
    return round(sum((n.rows + n.removed_by_filter) * n.loops for n in scans))


def _outer_nodes(node: Any) -> list[Any]:
    """The node and its descendants, leaving out InitPlans and SubPlans (the policies' own reads)."""
    found = [node]
    for child in node.children:
        if child.parent_relationship not in ("InitPlan", "SubPlan"):
            found += _outer_nodes(child)
    return found


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    out = []
    for f in findings:
        key = (f.details.get("function", ""), f.details.get("statement", ""))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out
