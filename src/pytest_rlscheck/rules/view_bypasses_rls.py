"""view-bypasses-rls: a view that reads RLS tables with its owner's rights."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Finding, Severity
from . import SweepContext, ref, rule

RULE = "view-bypasses-rls"


@rule(RULE, Severity.ERROR, "view", "a view over RLS tables that runs with its owner's rights")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for view in ctx.views():
        if view.security_invoker or not view.owner_bypasses_rls or "SELECT" not in ctx.api_privileges(view):
            continue
        protected = sorted({d.qualified for d in view.depends_on if d.rls_enabled})
        if not protected:
            continue
        materialized = view.kind == "m"
        yield Finding(
            RULE,
            Severity.ERROR,
            ref(view),
            f"The {'materialized view stores rows of' if materialized else 'view reads'} {', '.join(protected)} "
            f"(RLS on) {'read' if materialized else ''} with the rights of its owner {view.owner}, who bypasses RLS, "
            + ("and anyone with the anon key (signed in or not)" if view.granted("anon", "SELECT") else "and any signed-in user")
            + " can read every row of them through it: the policies of those tables do not apply.",
            f"REVOKE SELECT ON {view.shown} FROM anon, authenticated;  -- a materialized view has no RLS"
            if materialized
            else f"ALTER VIEW {view.shown} SET (security_invoker = true);  -- PostgreSQL 15+",
        )
