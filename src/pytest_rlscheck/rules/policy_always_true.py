"""policy-always-true: a policy whose condition is constant true for the API roles."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..findings import Finding, Severity
from . import API_ROLES, SweepContext, ref, rule

_TRUE = re.compile(r"^\(*\s*true\s*\)*$", re.I)

#: Conditions that hold for every signed-in user, whatever the row, as PostgreSQL prints them
#: once parentheses, spaces, ``SELECT`` wrappers, aliases and ``::text`` are removed.
_EVERY_USER = {
    "auth.role='authenticated'",
    "auth.uidisnotnull",
    "auth.jwt->>'role'='authenticated'",
    "auth.role<>'anon'",
    "auth.uid<>null",  # never true, but written in that belief: still no row condition
}


def _normalized(text: str) -> str:
    text = re.sub(r"::\w+", "", text.lower())
    text = re.sub(r"\bselect\b|\bas\s+\w+", "", text)
    return re.sub(r"[()\s]", "", text)


def always_true(text: str) -> str | None:
    """Why ``text`` lets every row through (for every signed-in user), or None."""
    if _TRUE.match(text.strip()):
        return "true"
    if _normalized(text) in _EVERY_USER:
        return f"{text.strip()}, true for every signed-in user"
    return None


@rule("policy-always-true", Severity.WARN, "table", "a policy that lets every row through")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        if not rel.rls_enabled:
            continue
        for policy in rel.policies:
            if not policy.permissive or not (set(policy.roles) & {*API_ROLES, "public"}):
                continue
            clauses = [(n, t) for n, t in (("USING", policy.using), ("WITH CHECK", policy.with_check)) if t]
            constant = [(n, why) for n, t in clauses if (why := always_true(t))]
            if not constant:
                continue
            writes = policy.command != "SELECT"
            yield Finding(
                "policy-always-true",
                Severity.ERROR if writes else Severity.WARN,
                ref(rel),
                f'Policy "{policy.name}" ({policy.command} TO {", ".join(policy.roles)}) has '
                + " and ".join(f"{n} ({why})" for n, why in constant)
                + f": every row passes{', so any signed-in user (or anon) can change any row' if writes else ''}. "
                "Intended only for data that is public by design.",
                f'ALTER POLICY "{policy.name}" ON {rel.qualified} USING (<tenant condition>);',
                details={"policy": policy.name},
            )
