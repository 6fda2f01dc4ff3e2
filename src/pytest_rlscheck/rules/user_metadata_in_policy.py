"""user-metadata-in-policy: a policy trusting JWT user_metadata, which users edit."""

from __future__ import annotations

from collections.abc import Iterator

from ..catalog import Policy, Relation, quote
from ..findings import Finding, Severity
from ..remedies import clauses, metadata_free
from . import SweepContext, ref, rule

RULE = "user-metadata-in-policy"

def _fix(rel: Relation, policy: Policy) -> str:
    using, check = metadata_free(policy.using), metadata_free(policy.with_check)
    return (
        "-- read app_metadata instead: only the service role can write it (set the value there, or look the "
        "role up in a membership table)\n"
        f"ALTER POLICY {quote(policy.name)} ON {rel.shown} {clauses(policy.command, using, check)};"
    )


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
                _fix(rel, policy),
                details={"policy": policy.name},
            )
