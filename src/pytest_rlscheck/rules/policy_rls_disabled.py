"""policy-rls-disabled: policies written, RLS never enabled: they do nothing."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Finding, Severity
from . import SweepContext, ref, rule

RULE = "policy-rls-disabled"


@rule(RULE, Severity.ERROR, "table", "policies exist but RLS is off, so none applies")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        if rel.rls_enabled or not rel.policies:
            continue
        names = ", ".join(f'"{p.name}"' for p in rel.policies)
        reachable = ctx.api_commands(rel)
        yield Finding(
            RULE,
            Severity.ERROR if reachable else Severity.WARN,
            ref(rel),
            f"The table has {len(rel.policies)} polic{'y' if len(rel.policies) == 1 else 'ies'} ({names}) but row "
            "level security is off, so PostgreSQL applies none of them"
            + (f": whoever holds {', '.join(sorted(reachable))} through the API acts on every row." if reachable else
               ". anon and authenticated hold no privilege on it today: one GRANT away from every row."),
            f"ALTER TABLE {rel.shown} ENABLE ROW LEVEL SECURITY;",
        )
