"""multiple-permissive: several permissive policies for one role and command."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Finding, Severity
from ..remedies import merge_permissive
from . import API_ROLES, COMMANDS, SweepContext, ref, rule

RULE = "multiple-permissive"


@rule(RULE, Severity.INFO, "table", "several permissive policies for one role and command", categories=("PERFORMANCE",))
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        if not rel.rls_enabled:
            continue
        # (command, policy names) -> the API roles that may run the command and get those policies
        groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for role in API_ROLES:
            granted = {p for g, p in rel.grants if g in (role, "public")}
            for command in COMMANDS:
                if command not in granted:
                    continue  # the role cannot run it: the policies never apply
                policies = [p for p in rel.policies if p.permissive and p.covers(command) and p.applies_to(role)]
                if len(policies) >= 2:
                    groups.setdefault((command, tuple(sorted(p.name for p in policies))), []).append(role)
        for (command, names), roles in groups.items():
            yield Finding(
                RULE,
                Severity.INFO,
                ref(rel),
                f"{len(names)} permissive policies apply to {' and '.join(roles)} for {command} "
                f"({', '.join(repr(n) for n in names)}): PostgreSQL ORs them and evaluates each for every row, "
                "and a wide one silently widens the narrow ones.",
                "-- one policy per role and command, the conditions ORed (what PostgreSQL evaluates now):\n"
                + merge_permissive(rel, command, [next(p for p in rel.policies if p.name == n) for n in names], roles)
                + "\n-- or, where a condition must hold in addition to the others, make its policy AS RESTRICTIVE",
                details={"roles": roles, "command": command, "policies": list(names)},
            )
