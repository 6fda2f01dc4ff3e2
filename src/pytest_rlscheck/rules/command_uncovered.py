"""command-uncovered: a command the API roles may run that no policy covers.

RLS refuses such a command, so it is no leak: with the configuration's ``commands`` for the
table it is a feature that cannot work (warn); from the grants alone — Supabase grants every
command on new tables — it is a grant wider than the policies (info)."""

from __future__ import annotations

from collections.abc import Iterator

from ..remedies import condition, create_policy, with_comment
from ..findings import Finding, Severity
from . import API_ROLES, COMMANDS, SweepContext, policies_for, ref, rule

RULE = "command-uncovered"


@rule(RULE, Severity.WARN, "table", "a granted (or expected) command no policy covers", categories=("CORRECTNESS",))
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        if not rel.rls_enabled or not rel.policies:
            continue  # rls-disabled / rls-no-policy say it better
        expected = ctx.expected_commands(rel)
        wanted = expected if expected is not None else ctx.api_commands(rel)
        for command in (c for c in COMMANDS if c in wanted):
            if any(policies_for(rel, command, role) for role in API_ROLES):
                continue
            reason = "the configuration expects it" if expected is not None else "anon/authenticated are granted it"
            yield Finding(
                RULE,
                Severity.WARN if expected is not None else Severity.INFO,
                ref(rel),
                f"{command} is not covered by any policy although {reason}: every {command} through the API is "
                "refused (or affects no row). Either a policy is missing or the grant is too wide.",
                with_comment(cond := condition(ctx, rel, command=command), create_policy(rel, command, "authenticated", cond))
                + f"\n-- or, if the API must not {command} it: REVOKE {command} ON {rel.shown} FROM anon, authenticated;",
                details={"command": command},
            )
