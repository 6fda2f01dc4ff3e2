"""policy-always-true: a policy whose condition is constant true for the API roles."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..findings import Finding, Severity
from . import API_ROLES, SweepContext, rule

_TRUE = re.compile(r"^\(*\s*true\s*\)*$", re.I)


@rule("policy-always-true", Severity.WARN, "table", "a policy that lets every row through")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        if not rel.rls_enabled:
            continue
        for policy in rel.policies:
            if not policy.permissive or not (set(policy.roles) & {*API_ROLES, "public"}):
                continue
            clauses = [(n, t) for n, t in (("USING", policy.using), ("WITH CHECK", policy.with_check)) if t]
            constant = [n for n, t in clauses if _TRUE.match(t.strip())]
            if not constant:
                continue
            writes = policy.command != "SELECT"
            yield Finding(
                "policy-always-true",
                Severity.ERROR if writes else Severity.WARN,
                rel.qualified,
                f'Policy "{policy.name}" ({policy.command} TO {", ".join(policy.roles)}) has {" and ".join(constant)} '
                f"(true): every row passes{', so any signed-in user (or anon) can change any row' if writes else ''}. "
                "Intended only for data that is public by design.",
                f'ALTER POLICY "{policy.name}" ON {rel.qualified} USING (<tenant condition>);',
                details={"policy": policy.name},
            )
