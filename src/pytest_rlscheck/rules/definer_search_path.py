"""definer-search-path: SECURITY DEFINER without a fixed search_path."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Finding, Severity
from . import SweepContext, ref, rule

RULE = "definer-search-path"


@rule(RULE, Severity.WARN, "function", "SECURITY DEFINER function without a fixed search_path")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for fn in ctx.catalog.functions:
        if not fn.security_definer or any(c.startswith("search_path=") for c in fn.config):
            continue
        yield Finding(
            RULE,
            Severity.WARN,
            ref(fn),
            f"{fn.qualified} runs with the rights of {fn.owner} and resolves names through the caller's "
            "search_path: a caller who can create objects in a schema on that path can make it run their code.",
            f"ALTER FUNCTION {fn.shown} SET search_path = '';  -- and schema-qualify the names in its body",
        )
