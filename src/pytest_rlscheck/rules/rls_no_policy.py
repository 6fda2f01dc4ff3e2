"""rls-no-policy: RLS on, but no policy: every API request is refused."""

from __future__ import annotations

from collections.abc import Iterator

from ..catalog import Relation
from ..findings import Finding, Severity
from ..remedies import condition, create_policy
from . import SweepContext, ref, rule

RULE = "rls-no-policy"


def _fix(ctx: SweepContext, rel: Relation) -> str:
    cond = condition(ctx, rel)
    return (
        f"REVOKE ALL ON {rel.shown} FROM anon, authenticated;  -- backend-only\n"
        "-- or, if the API should use it, a policy per command it needs, e.g.\n"
        f"--   {create_policy(rel, 'SELECT', 'authenticated', cond)}\n"
        f"--   ({cond.comment.removeprefix('-- ')})"
    )


@rule(RULE, Severity.INFO, "table", "RLS on without any policy: the API can do nothing with it", categories=("CORRECTNESS",))
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        if not rel.rls_enabled or rel.policies or not ctx.api_commands(rel):
            continue
        yield Finding(
            RULE,
            Severity.INFO,
            ref(rel),
            "Row level security is on and there is no policy, so every request of anon/authenticated is refused "
            "or sees nothing. Fine for a backend-only table; otherwise the API is broken for it.",
            _fix(ctx, rel),
        )
