"""rls-disabled: a table the API roles can reach, with row level security off."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Finding, Severity
from . import SweepContext, ref, rule

RULE = "rls-disabled"


@rule(RULE, Severity.ERROR, "table", "RLS is off on a table anon/authenticated can reach")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        privileges = ctx.api_commands(rel)
        if rel.rls_enabled or not privileges:
            continue
        anon = {p for g, p in rel.grants if g in ("anon", "public")} & privileges
        who = ("anyone with the project's anon key (signed in or not)" if anon
               else "any signed-in user")
        yield Finding(
            RULE,
            Severity.ERROR,
            ref(rel),
            f"Row level security is off, and anon/authenticated hold {', '.join(sorted(privileges))} on it: "
            f"{who} can {', '.join(sorted(anon or privileges)).lower()} every row through the API.",
            f"ALTER TABLE {rel.shown} ENABLE ROW LEVEL SECURITY;  -- then add policies"
            f" (or REVOKE ALL ON {rel.shown} FROM anon, authenticated; if the API must not see it)",
        )
