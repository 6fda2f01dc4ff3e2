"""insert-without-select: INSERT allowed but no SELECT policy: INSERT ... RETURNING fails."""

from __future__ import annotations

from collections.abc import Iterator

from ..catalog import Relation
from ..remedies import ANON, condition, create_policy, with_comment
from ..findings import Finding, Severity
from . import API_ROLES, SweepContext, policies_for, ref, rule

RULE = "insert-without-select"


def _fix(ctx: SweepContext, rel: Relation, role: str) -> str:
    if role == "anon":  # anon has no tenant: reading back what it wrote would show it everyone's
        return ("-- anon has no user or tenant to read rows back by: have the client insert without returning the "
                "row (return=minimal); this policy makes that explicit\n"
                + create_policy(rel, "SELECT", role, ANON))
    cond = condition(ctx, rel, command="SELECT")
    return (with_comment(cond, create_policy(rel, "SELECT", role, cond))
            + "\n-- (or have the client insert without returning the row: return=minimal)")


@rule(RULE, Severity.INFO, "table", "an INSERT policy without a SELECT policy", categories=("CORRECTNESS",))
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        if not rel.rls_enabled:
            continue
        for role in API_ROLES:
            if policies_for(rel, "INSERT", role) and not policies_for(rel, "SELECT", role):
                yield Finding(
                    RULE,
                    Severity.INFO,
                    ref(rel),
                    f"{role} may insert rows but no policy lets it read them, so INSERT ... RETURNING — what "
                    "supabase-js .insert().select() and PostgREST's return=representation send — fails with "
                    "a row-level security error.",
                    _fix(ctx, rel, role),
                    details={"role": role},
                )
                break
