"""insert-without-select: INSERT allowed but no SELECT policy: INSERT ... RETURNING fails."""

from __future__ import annotations

from collections.abc import Iterator

from ..catalog import quote
from ..findings import Finding, Severity
from . import API_ROLES, SweepContext, policies_for, ref, rule

RULE = "insert-without-select"


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
                    f"CREATE POLICY {quote(f'{rel.name}_select')} ON {rel.shown} FOR SELECT TO {role} USING (...);",
                    details={"role": role},
                )
                break
