"""rls-disabled: a table the API roles can reach, with row level security off."""

from __future__ import annotations

from collections.abc import Iterator

from ..findings import Finding, Severity
from ..tenancy import personal_columns
from . import SweepContext, ref, rule

RULE = "rls-disabled"


@rule(RULE, Severity.ERROR, "table", "RLS is off on a table anon/authenticated can reach")
def check(ctx: SweepContext) -> Iterator[Finding]:
    for rel in ctx.tables():
        privileges = ctx.api_commands(rel)
        if rel.rls_enabled or not privileges:
            continue
        anon = {p for g, p in rel.grants if g in ("anon", "public")} & privileges
        who = ("anyone with the project's anon key (signed in or not)" if anon
               else "any signed-in user")
        # Reading a catalogue (rows of nobody's) is its design; writing it, or reading rows
        # that are someone's, is what RLS is for.
        catalogue = privileges <= {"SELECT"} and ctx.whose_rows(rel) is None and not personal_columns(rel)
        yield Finding(
            RULE,
            Severity.WARN if catalogue else Severity.ERROR,
            ref(rel),
            f"Row level security is off, and anon/authenticated hold {', '.join(sorted(privileges))} on it: "
            f"{who} can {', '.join(sorted(anon or privileges)).lower()} every row through the API"
            + (". Its rows are nobody's (no tenant or user column), so reading them may be the design; latent: one "
               "GRANT of INSERT, UPDATE or DELETE away from anyone writing them." if catalogue else "."),
            f"ALTER TABLE {rel.shown} ENABLE ROW LEVEL SECURITY;  -- then add policies"
            f" (or REVOKE ALL ON {rel.shown} FROM anon, authenticated; if the API must not see it)",
        )
