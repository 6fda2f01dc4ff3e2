"""no-primary-key: a table without a primary key."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Finding, Severity
from ..catalog import Relation, quote
from . import SweepContext, ref, rule

RULE = "no-primary-key"


def _fix(rel: Relation) -> str:
    """The primary key over a unique set of NOT NULL columns the table has, else a new
    identity column."""
    for key in rel.unique_keys:
        columns = [rel.column(c) for c in key]
        if key and all(c is not None and c.not_null for c in columns):
            return (f"ALTER TABLE {rel.shown} ADD PRIMARY KEY ({', '.join(quote(c) for c in key)});"
                    "  -- those columns are unique and NOT NULL already")
    name = next(n for n in ("id", "row_id", "rlscheck_id") if rel.column(n) is None)
    return (f"ALTER TABLE {rel.shown} ADD COLUMN {quote(name)} bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;"
            "  -- no unique NOT NULL columns to use: a new identity column numbers the existing rows")


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
            _fix(rel),
        )
