"""user-metadata-in-policy: a policy trusting JWT user_metadata, which users edit."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Finding, Severity
from . import SweepContext, ref, rule

RULE = "user-metadata-in-policy"

@rule(RULE, Severity.ERROR, "table", "a policy trusts user-editable metadata")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        for policy in rel.policies:
            if not any(facts.reads_user_metadata for _, _, facts in policy.clauses()):
                continue
            yield Finding(
                RULE,
                Severity.ERROR,
                ref(rel),
                f'Policy "{policy.name}" reads user_metadata, which every user can change for themselves '
                "(supabase.auth.updateUser): a policy based on it lets users grant themselves access.",
                "Use app_metadata (only the service role can write it) or a membership table: "
                "auth.jwt() -> 'app_metadata' ->> 'tenant_id'.",
                details={"policy": policy.name},
            )
