"""constraint-fuzz: with ``--rlscheck-fuzz``, each JSON/JSONB column under a CHECK
constraint is fuzzed with Hypothesis (:mod:`pytest_rlscheck.fuzz`). A runner, not a rule of
its own: what it finds is reported as ``constraint-raises`` and ``constraint-admits-null``."""

from __future__ import annotations

from typing import Any

from ..catalog import quote
from ..findings import Finding, Severity
from . import CONSTRAINT_ADMITS_NULL, CONSTRAINT_RAISES, Measurement, SweepContext, dynamic_rule

RUNNER = "constraint-fuzz"


def _applies(ctx: SweepContext, kind: str, obj: Any) -> bool:
    rel, column = obj
    return column.type in ("json", "jsonb") and any(column.name in c.columns for c in rel.checks())


@dynamic_rule(RUNNER, Severity.ERROR, "column", "fuzz the CHECK constraints of JSON columns", runner=True,
              option="fuzz_examples", applies=_applies, categories=("CORRECTNESS",))
def run(m: Measurement) -> tuple[list[Finding], dict[str, Any]]:
    from ..fuzz import FuzzFailure, admits_null, fuzz_constraint

    rls, check = m.rls, m.check
    rel = m.ctx.catalog.relation(check.oid)
    column = check.object.column
    assert column is not None
    findings: list[Finding] = []
    facts: dict[str, Any] = {}
    try:
        result = fuzz_constraint(rls, rel.qualified, column, max_examples=m.options.get("fuzz_examples") or 200)
        facts["fuzz"] = {"examples": result.examples, "verdicts": dict(result.verdicts)}
    except FuzzFailure as exc:
        name = exc.constraint.name if exc.constraint else "a CHECK constraint"
        findings.append(
            Finding(
                CONSTRAINT_RAISES,
                Severity.ERROR,
                check.object,
                exc.headline,
                f"-- rewrite {quote(name)} to test the JSON type before converting, as in\n"
                "--   CHECK (CASE WHEN jsonb_typeof(x) = 'number' THEN (x)::numeric > 0 ELSE false END)\n"
                f"-- (ALTER TABLE {rel.shown} DROP CONSTRAINT {quote(name)}, ADD CONSTRAINT {quote(name)} CHECK (the new "
                "condition); the fuzz's example above fails it today)",
                details={"constraint": name},
            )
        )
    null = admits_null(rls, rel.qualified, column)
    if null is not None:
        findings.append(
            Finding(
                CONSTRAINT_ADMITS_NULL,
                Severity.WARN,
                check.object,
                f"{column} is nullable and SQL NULL passes {null.name} ({null.definition}): a CHECK that "
                "evaluates to NULL passes, so a row without the value gets in.",
                f"ALTER TABLE {rel.shown} ALTER COLUMN {quote(column)} SET NOT NULL;"
                f"  -- or add {quote(column)} IS NOT NULL to the CHECK",
                details={"constraint": null.name},
            )
        )
    return findings, facts
