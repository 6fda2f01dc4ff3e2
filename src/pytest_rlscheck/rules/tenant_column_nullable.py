"""tenant-column-nullable: a row may belong to no tenant."""

from __future__ import annotations

from collections.abc import Iterator

from ..catalog import quote
from ..findings import Finding, Severity
from . import SweepContext, ref, rule

RULE = "tenant-column-nullable"


@rule(RULE, Severity.WARN, "table", "the tenant column accepts NULL")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        key = ctx.tenant_key(rel)
        if key is None or key.per_user:
            continue  # an owner column inferred from the policies may be NULL by design (ON DELETE SET NULL)
        column = rel.column(key.column) if key.column else None
        if column is None or column.not_null or column.name in rel.primary_key:
            continue
        yield Finding(
            RULE,
            Severity.WARN,
            ref(rel),
            f"{column.name} is the tenant column and accepts NULL: a row without a tenant is either invisible to "
            "everyone or, with a policy written as `tenant IS NULL OR ...`, visible to every tenant.",
            f"-- fails while a row has no tenant: give those rows their tenant first (find them with\n"
            f"-- SELECT * FROM {rel.shown} WHERE {quote(column.name)} IS NULL;)\n"
            f"ALTER TABLE {rel.shown} ALTER COLUMN {quote(column.name)} SET NOT NULL;",
        )
