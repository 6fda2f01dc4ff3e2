"""policy-always-true: a policy whose condition is constant true for the API roles."""

from __future__ import annotations

from collections.abc import Iterator

from ..catalog import quote
from ..findings import Finding, Severity
from ..policy_model import ExprFacts
from . import API_ROLES, SweepContext, ref, rule

RULE = "policy-always-true"


def always_true(text: str, facts: ExprFacts) -> str | None:
    """Why an expression lets every row through (for every signed-in user), or None: it is
    the constant true, or a condition over the caller alone that every signed-in user meets
    (``auth.uid() IS NOT NULL``, ``auth.role() = 'authenticated'``...)."""
    if facts.constant_true:
        return "true"
    if facts.every_user:
        return f"{text.strip()}, true for every signed-in user"
    return None


@rule(RULE, Severity.WARN, "table", "a policy that lets every row through")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        if not rel.rls_enabled:
            continue
        for policy in rel.policies:
            if not policy.permissive or not (set(policy.roles) & {*API_ROLES, "public"}):
                continue
            constant = [(n, why) for n, t, facts in policy.clauses() if (why := always_true(t, facts))]
            if not constant:
                continue
            writes = policy.command != "SELECT"
            yield Finding(
                RULE,
                Severity.ERROR if writes else Severity.WARN,
                ref(rel),
                f'Policy "{policy.name}" ({policy.command} TO {", ".join(policy.roles)}) has '
                + " and ".join(f"{n} ({why})" for n, why in constant)
                + f": every row passes{', so any signed-in user (or anon) can change any row' if writes else ''}. "
                "Intended only for data that is public by design.",
                f"ALTER POLICY {quote(policy.name)} ON {rel.shown} USING (<tenant condition>);",
                details={"policy": policy.name},
            )
