"""unindexed-policy-column: a column a policy compares with the user or the tenant has no
index leading with it, so every policy check reads the whole table."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..catalog import Relation
from ..findings import Finding, Severity
from . import SweepContext, ref, rule

_AUTH = r"(?:\(\s*SELECT\s+)?\(?auth\.\w+\(\)"
_PATTERNS = (
    re.compile(rf'(?<![\w.])"?(\w+)"?\s*=\s*\(?\s*{_AUTH}', re.I),  # col = auth.uid() / ( SELECT auth.uid() ...)
    re.compile(rf"{_AUTH}[^=()]*\)?\s*=\s*\(?(?<![\w.])\"?(\w+)\"?\b(?!\s*\()", re.I),  # auth.uid() = col
    re.compile(r'(?<![\w.])"?(\w+)"?\s+IN\s+\(\s*SELECT\b', re.I),  # col IN (SELECT ...)
    re.compile(r"(?<![\w.])\"?(\w+)\"?\s*=\s*ANY\s*\((?!\s*(?:ARRAY\[|'))", re.I),  # col = ANY (a set), not a literal list
)


def policy_columns(rel: Relation, *, scanning_only: bool = True) -> set[str]:
    """The table's own columns its policies compare with the user or with a set of tenants.

    ``scanning_only``: from USING expressions alone, which filter the rows a statement reads;
    a WITH CHECK tests one new row, and no index helps it."""
    found: set[str] = set()
    for policy in rel.policies:
        for text in (policy.using,) if scanning_only else (policy.using, policy.with_check):
            for pattern in _PATTERNS:
                for m in pattern.finditer(text or ""):
                    if rel.column(m.group(1)):
                        found.add(m.group(1))
    return found


@rule("unindexed-policy-column", Severity.WARN, "table", "a column policies filter on has no index")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        if not rel.rls_enabled:
            continue
        for column in sorted(policy_columns(rel)):
            if any(index.valid and index.columns[:1] == (column,) for index in rel.indexes):
                continue
            yield Finding(
                "unindexed-policy-column",
                Severity.WARN,
                ref(rel),
                f"The policies compare {column} with the user or their tenants, and no index leads with "
                f"{column}: every query through the API reads the whole table to apply them.",
                f"CREATE INDEX CONCURRENTLY ON {rel.qualified} ({column});",
                details={"column": column},
            )
