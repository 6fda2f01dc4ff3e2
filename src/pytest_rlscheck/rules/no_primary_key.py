"""no-primary-key: a table without a primary key."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Finding, Severity
from . import SweepContext, ref, rule

RULE = "no-primary-key"


@rule(RULE, Severity.INFO, "table", "a table without a primary key", categories=("PERFORMANCE",))
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        if rel.primary_key:
            continue
        yield Finding(
            RULE,
            Severity.INFO,
            ref(rel),
            "The table has no primary key: PostgREST cannot address single rows for update/delete with "
            "certainty, logical replication (Realtime) cannot send its updates and deletes, and duplicates go "
            "unnoticed.",
            f"ALTER TABLE {rel.shown} ADD PRIMARY KEY (...);",
        )
