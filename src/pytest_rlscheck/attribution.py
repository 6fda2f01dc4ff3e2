"""Which policy a call site of a plan comes from, and the fix to show: the plan-attribution
engine behind ``assert_evaluated_once`` and the ``auth-per-row`` rule. Policy facts come
from the policy model (:mod:`pytest_rlscheck.policy_model`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .catalog import Catalog, Policy, Relation, quote
from .plans import CallSite, Plan
from .policy_model import unwrapped_spans

if TYPE_CHECKING:
    from .protocol import RlsProtocol as Rls

__all__ = ["attribute", "attribute_on", "plan_catalog", "wrap_fix"]


def plan_catalog(rls: Rls, plan: Plan, known: Catalog | None = None) -> Catalog:
    """The catalog of the relations the plan reads: ``known`` when it has them all (the
    sweep's, read once), else read now."""
    names = {n.relation for n in plan.nodes() if n.relation}
    if known is not None and names <= {r.qualified for r in known.relations}:
        return known
    schemas = sorted({name.split(".")[0] for name in names if "." in name})
    with rls.as_owner(), rls.safely():
        return Catalog.load(rls.connection, schemas=schemas, functions=True)


def attribute(
    catalog: Catalog, site: CallSite, function: str, statement: str = "", plan: Plan | None = None
) -> tuple[Relation, Policy, str] | None:
    """The policy a call site comes from, and the call to wrap in it: on the relation the
    site scans, else on the other relations of the plan (a policy's subquery scans another
    table: ``org_id IN (SELECT ... FROM members WHERE user_id = auth.uid())``)."""
    found = attribute_all(catalog, site, function, statement, plan)
    return found[0] if found else None


def attribute_all(
    catalog: Catalog, site: CallSite, function: str, statement: str = "", plan: Plan | None = None
) -> list[tuple[Relation, Policy, str]]:
    """:func:`attribute`, with every policy of that relation the call may come from: a
    statement reads all the permissive policies of its command, so a fix for one of them
    alone leaves the others calling it per row."""
    names = [site.node.relation] + ([n.relation for n in plan.nodes()] if plan is not None else [])
    for name in dict.fromkeys(n for n in names if n):
        try:
            rel = catalog.relation(name)
        except KeyError:
            continue
        found = attribute_on(catalog, rel, function, statement)
        if found:
            return found
    return []


def attribute_on(catalog: Catalog, rel: Relation, function: str, statement: str) -> list[tuple[Relation, Policy, str]]:
    """The policies a call site comes from, and the call to wrap in each.

    Candidates are the scanned relation's policies for the statement's command first (an
    UPDATE reads its UPDATE policies, then SELECT ones), USING before WITH CHECK (only USING
    filters a scan). Policies that call ``function`` per row themselves win; otherwise those
    that call per row a function whose body calls it (a wrapper such as ``is_admin()``), and
    that call is the one to wrap."""
    command = (statement.split(None, 1) or ["select"])[0].upper()
    order = [command, "SELECT"] if command in ("UPDATE", "DELETE") else ["SELECT"]
    policies = sorted(
        (p for p in rel.policies if any(p.covers(c) for c in order)),
        key=lambda p: next(i for i, c in enumerate(order) if p.covers(c)),
    )
    for field in ("using_facts", "check_facts"):
        direct = [(rel, policy, function) for policy in policies if getattr(policy, field).calls_unwrapped(function)]
        if direct:
            return direct
    bare = function.rpartition(".")[2].lower()
    wrappers = [f.qualified for f in catalog.functions if bare in f.calls() and f.qualified != function]
    for field in ("using_facts", "check_facts"):
        through = [(rel, policy, wrapper) for policy in policies for wrapper in wrappers
                   if getattr(policy, field).calls_unwrapped(wrapper)]
        if through:
            return list(dict.fromkeys(through))
    return []


def wrap_fix(rel: Relation, policy: Policy, function: str) -> str:
    """ALTER POLICY with every per-row call of ``function`` as ``(select ...)``; or, when a
    call takes columns (of the row, or of a subquery's rows), what to do instead: wrapping
    it would not make it run once."""
    if any(call.row_arguments for _, _, facts in policy.clauses() for call in facts.unwrapped(function)):
        return (
            f"-- policy {quote(policy.name)} on {rel.shown} passes the row's columns to {function}(), so it runs "
            "per row however it is wrapped: compute the set of values it accepts once (a set-returning function "
            f"of (SELECT auth.uid())) and compare the column with that set, the column IN (SELECT that function), instead of "
            f"calling {function}()"
        )

    # Every per-row call the policy makes that nothing of the row feeds is wrapped at once, so
    # that the fixes of one policy (one per function measured) are one and the same rewrite.
    functions = {function} | {
        call.function for _, _, facts in policy.clauses() for call in facts.calls
        if not call.once and not call.row_arguments and call.function.partition(".")[0] != "pg_catalog"
    } | {
        call.function for _, _, facts in policy.clauses() for call in facts.calls
        if not call.once and not call.row_arguments and call.function == "pg_catalog.current_setting"
    }

    def wrap(text: str) -> str:
        spans = sorted({span for name in functions for span in unwrapped_spans(text, name)}, key=lambda s: (s[0], -s[1]))
        outer: list[tuple[int, int]] = []
        for start, end in spans:  # a call inside another that is wrapped goes with it
            if not outer or start >= outer[-1][1]:
                outer.append((start, end))
        out, last = [], 0
        for start, end in outer:
            out.append(text[last:start] + f"(select {text[start:end]})")
            last = end
        return "".join(out) + text[last:]

    clauses = [f"{label} ({wrap(text)})" for label, text, _ in policy.clauses()]
    return f'ALTER POLICY {quote(policy.name)} ON {rel.shown} {" ".join(clauses)};'
