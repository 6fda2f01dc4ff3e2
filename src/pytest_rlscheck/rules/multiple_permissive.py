"""multiple-permissive: several permissive policies for one role and command."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Finding, Severity
from . import API_ROLES, COMMANDS, SweepContext, rule


@rule("multiple-permissive", Severity.WARN, "table", "several permissive policies for one role and command")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        if not rel.rls_enabled:
            continue
        seen: set[tuple[str, ...]] = set()
        for role in API_ROLES:
            for command in COMMANDS:
                policies = [
                    p for p in rel.policies
                    if p.permissive and p.covers(command) and (role in p.roles or "public" in p.roles)
                ]
                names = tuple(sorted(p.name for p in policies))
                if len(policies) < 2 or (command, names) in seen:
                    continue
                seen.add((command, names))
                yield Finding(
                    "multiple-permissive",
                    Severity.WARN,
                    rel.qualified,
                    f"{len(policies)} permissive policies apply to {role} for {command} "
                    f"({', '.join(repr(n) for n in names)}): PostgreSQL ORs them and evaluates each for every row, "
                    "and a wide one silently widens the narrow ones.",
                    "Merge them into one policy per role and command (OR the conditions), or make the extra "
                    "conditions RESTRICTIVE.",
                    details={"role": role, "command": command},
                )
