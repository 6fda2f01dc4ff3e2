"""unindexed-fk: a foreign key whose columns no index leads with."""

from __future__ import annotations

from collections.abc import Iterator

from ..catalog import Relation, quote
from ..findings import Finding, Severity
from . import SweepContext, ref, rule

RULE = "unindexed-fk"


def leading_index(rel: Relation, columns: tuple[str, ...]) -> bool:
    """An index that leads with the key's columns (in any order), or at least with its first
    column — enough for PostgreSQL to find the referencing rows without reading them all."""
    return any(
        index.valid and index.columns and (set(index.columns[: len(columns)]) == set(columns) or index.columns[0] == columns[0])
        for index in rel.indexes
    )


@rule(RULE, Severity.INFO, "table", "a foreign key without an index on its columns", categories=("PERFORMANCE",))
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        for fk in (c for c in rel.constraints if c.type == "f"):
            if leading_index(rel, fk.columns):
                continue
            cols = ", ".join(fk.columns)
            yield Finding(
                RULE,
                Severity.INFO,
                ref(rel),
                f"Foreign key {fk.name} ({cols}) → {fk.references} has no index leading with its columns: deleting "
                f"or updating a {fk.references} row scans all of {rel.qualified}, and joins on it cannot use an index.",
                f"CREATE INDEX ON {rel.shown} ({', '.join(quote(c) for c in fk.columns)});"
                "  -- on a live table, CREATE INDEX CONCURRENTLY (outside a transaction: not in a migration the CLI runs)",
                details={"constraint": fk.name},
            )
