"""user-metadata-in-policy: a policy trusting JWT user_metadata, which users edit."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..findings import Finding, Severity
from . import SweepContext, ref, rule

_USER_METADATA = re.compile(r"user_metadata|raw_user_meta_data", re.I)


@rule("user-metadata-in-policy", Severity.ERROR, "table", "a policy trusts user-editable metadata")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        for policy in rel.policies:
            if not any(_USER_METADATA.search(t or "") for t in (policy.using, policy.with_check)):
                continue
            yield Finding(
                "user-metadata-in-policy",
                Severity.ERROR,
                ref(rel),
                f'Policy "{policy.name}" reads user_metadata, which every user can change for themselves '
                "(supabase.auth.updateUser): a policy based on it lets users grant themselves access.",
                "Use app_metadata (only the service role can write it) or a membership table: "
                "auth.jwt() -> 'app_metadata' ->> 'tenant_id'.",
                details={"policy": policy.name},
            )
