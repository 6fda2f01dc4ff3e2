"""auth-per-row: a call of auth.*() or current_setting() that runs once per row.

Measured, not guessed: as an authenticated user, the plain SELECT (and the UPDATE and
DELETE forms) of the table run under EXPLAIN ANALYZE, and the plan says how many times
each call ran. A call text matching would flag but the plan runs once — inside an
uncorrelated, hashed SubPlan, or wrapped as ``(select auth.jwt() ->> 'role')`` — is not a
finding.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from ..catalog import Catalog, Relation
from ..findings import Finding, Severity
from ..attribution import attribute, plan_catalog, wrap_fix
from ..plans import FunctionPattern
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


@dynamic_rule(RULE, Severity.WARN, "table", "a call of auth.*() or current_setting() that runs once per row",
              categories=("PERFORMANCE",), table_columns=_table_columns)
def run(m: Measurement) -> tuple[list[Finding], dict[str, Any]]:
    rel = m.ctx.catalog.relation(m.check.oid)
    if not rel.rls_enabled or not rel.policies:
        return [], {"auth.uid": None}
    user = m.principals[0] if m.principals else m.rls.user(ANYONE)
    if "auth patterns" not in m.memo:  # what auth.*() looks like in plans, once per sweep
        m.memo["auth patterns"] = functions(m.rls)
    findings, measured = measure(m.rls, rel, user, m.memo["auth patterns"], m.ctx.catalog)
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


def measure(
    rls: Rls, rel: Relation, principal: Any, patterns: list[FunctionPattern], known: Catalog | None = None
) -> tuple[list[Finding], dict[str, Any]]:
    """Findings for ``rel`` and what was measured (evaluations of auth.uid() per statement).

    ``patterns``: :func:`functions` of this database, computed once per sweep; ``known``: the
    sweep's catalog, which names the policies of a finding without reading the catalog again."""
    identity = rls.identity_for(principal)
    findings: list[Finding] = []
    rows = 0
    measured: dict[str, Any] = {"rows": rows, "auth.uid": {}}
    for kind, statement in statements(rel):
        try:
            plan = rls.explain(statement, as_user=identity, count_calls=False)
        except psycopg.Error as exc:  # e.g. no UPDATE privilege: nothing runs, nothing to count
            measured["auth.uid"][kind] = None
            measured.setdefault("skipped", {})[kind] = f"{exc.sqlstate}: {exc.diag.message_primary}"
            continue
        if kind == "select":  # rows the table's scan examined: what the counts were measured on
            rows = measured["rows"] = _rows_examined(plan, rel)
        catalog = None
        for pattern in patterns:
            rls.register_function_pattern(pattern)  # current_setting: minus the auth.* bodies
            sites = plan.call_sites(pattern.name)
            if pattern.name == "auth.uid":
                measured["auth.uid"][kind] = sum(s.evaluations for s in sites)
            repeated = [s for s in sites if s.evaluations > 1]
            if not repeated:
                continue
            catalog = catalog or plan_catalog(rls, plan, known)
            total = sum(s.evaluations for s in sites)
            where = "; ".join(f"{s.node.label} ({s.field}): {s.evaluations}" for s in repeated)
            statement_text = statement.as_string(rls.connection)
            fixes = list(dict.fromkeys(
                wrap_fix(*found) for s in repeated if (found := attribute(catalog, s, pattern.name, statement_text, plan))
            ))
            findings.append(
                Finding(
                    RULE,
                    Severity.WARN,
                    ref(rel),
                    f"{pattern.name}() ran {total:,} times for one `{statement.as_string(rls.connection)}` "
                    f"(measured on {rows:,} rows, as {plan.identity}): {where}. It should run once per statement.",
                    "\n".join(fixes) or f"Wrap the call: (select {pattern.name}())",
                    details={"statement": kind, "function": pattern.name, "evaluations": total, "rows": rows},
                )
            )
    if rows < 2 and not findings and any(
        p.using_facts.calls_unwrapped(*AUTH_FUNCTIONS, "pg_catalog.current_setting") for p in rel.policies
    ):
        findings.append(
            Finding(
                RULE,
                Severity.INFO,
                ref(rel),
                f"Not measurable on {rows} row(s); the policy text calls auth.*() or current_setting() without "
                "(select ...), which usually runs once per row. Seed a few rows to measure it.",
                "Wrap the call: (select auth.uid())",
            )
        )
    return _dedupe(findings), measured


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
