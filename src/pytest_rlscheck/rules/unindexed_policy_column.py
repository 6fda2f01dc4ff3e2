"""unindexed-policy-column: a column a policy compares with the user or the tenant has no
index leading with it, so every policy check reads the whole table."""

from __future__ import annotations

from collections.abc import Iterator

from ..catalog import Relation, quote
from ..findings import Finding, Severity
from . import SweepContext, ref, rule

RULE = "unindexed-policy-column"


def policy_columns(rel: Relation, *, scanning_only: bool = True) -> set[str]:
    """The table's own columns its policies compare with the user or with a set of tenants
    (``col = (select auth.uid())``, ``col IN (SELECT ...)``, ``col = ANY (<a set>)``; a literal
    list is no tenant filter).

    ``scanning_only``: from USING expressions alone, which filter the rows a statement reads;
    a WITH CHECK tests one new row, and no index helps it."""
    found: set[str] = set()
    for policy in rel.policies:
        for facts in (policy.using_facts,) if scanning_only else (policy.using_facts, policy.check_facts):
            found |= facts.filter_columns()
    return found


@rule(RULE, Severity.INFO, "table", "a column policies filter on has no index", categories=("PERFORMANCE",))
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        if not rel.rls_enabled:
            continue
        for column in sorted(policy_columns(rel)):
            if any(index.valid and index.columns[:1] == (column,) for index in rel.indexes):
                continue
            yield Finding(
                RULE,
                Severity.INFO,
                ref(rel),
                f"The policies compare {column} with the user or their tenants, and no index leads with "
                f"{column}: every query through the API reads the whole table to apply them.",
                f"CREATE INDEX ON {rel.shown} ({quote(column)});"
                "  -- on a live table, CREATE INDEX CONCURRENTLY (outside a transaction: not in a migration the CLI runs)",
                details={"column": column},
            )
