"""view-bypasses-rls: a view that reads RLS tables with its owner's rights."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Finding, Severity
from . import SweepContext, rule


@rule("view-bypasses-rls", Severity.ERROR, "view", "a view over RLS tables that runs with its owner's rights")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for view in ctx.views():
        if view.security_invoker or not view.owner_bypasses_rls or "SELECT" not in ctx.api_privileges(view):
            continue
        protected = [t for t in map(ctx.relation_by_oid, view.depends_on) if t is not None and t.rls_enabled]
        if not protected:
            continue
        yield Finding(
            "view-bypasses-rls",
            Severity.ERROR,
            view.qualified,
            f"The view reads {', '.join(t.qualified for t in protected)} (RLS on) with the rights of its owner "
            f"{view.owner}, who bypasses RLS, and anon/authenticated may select from it: their policies do not "
            "apply through the view.",
            f"ALTER VIEW {view.qualified} SET (security_invoker = true);  -- PostgreSQL 15+",
        )
