"""definer-trigger: a SECURITY DEFINER trigger that acts, with its owner's rights (RLS
bypassed), on what a user wrote into another tenant's data.

For each table of the exposed schemas that the API may INSERT or UPDATE (granted, and a
policy admits authenticated) and that has an enabled trigger whose function is SECURITY
DEFINER firing on that command, the user writes a row like their own (INSERT) or updates one
of their rows (UPDATE) with each column they may set that holds a user id, a tenant id, or a
stored object's path set to the other principal's value, then once with all of them. What
changed for the other tenant or user (:mod:`pytest_rlscheck.effects`), besides the written
row itself (the table's own policies: tenant-leak), is what the trigger did: a membership in
their tenant, their rows created, changed or deleted, their stored object deleted.
"""

from __future__ import annotations

from typing import Any

from ..catalog import Relation, quote
from ..findings import Finding, Severity
from ..function_probes import Attempt, id_columns, write_attempts, write_columns
from . import Measurement, SweepContext, dynamic_rule, policies_for, ref
from .function_calls import effects_scope

RULE = "definer-trigger"
COMMANDS = ("INSERT", "UPDATE")


def writable(ctx: SweepContext, rel: Relation, command: str) -> bool:
    """The API may send ``command`` to ``rel``: granted, and (under RLS) a policy admits authenticated."""
    return command in ctx.api_commands(rel) and (not rel.rls_enabled or bool(policies_for(rel, command, "authenticated")))


def definer_triggers(rel: Relation, command: str) -> list[Any]:
    return [t for t in rel.triggers if t.security_definer and t.fires_on(command)]


def _applies(ctx: SweepContext, kind: str, rel: Any) -> bool:
    return any(definer_triggers(rel, c) and writable(ctx, rel, c) for c in COMMANDS)


@dynamic_rule(RULE, Severity.ERROR, "table", "a SECURITY DEFINER trigger acts on another tenant's data for what a user wrote",
              applies=_applies)
def run(m: Measurement) -> tuple[list[Finding], dict[str, Any]]:
    rel = m.ctx.catalog.relation(m.check.oid)
    tenants = [p for p in m.principals if p.tenant is not None]
    pairs = [(a, b) for a in tenants for b in tenants if str(a.tenant) != str(b.tenant)]
    if not pairs:
        return [], {"definer triggers": "no principals"}
    scope = effects_scope(m.rls, m.ctx, m.memo)
    users, tenant_columns = id_columns(m.ctx.catalog, m.ctx.schemas, m.ctx.config)
    storage = scope.kind("storage.objects") is not None
    columns = write_columns(rel, m.ctx.tenant_key(rel), users, tenant_columns, m.ctx.config, m.ctx.catalog, storage=storage)
    leaks: list[tuple[str, Attempt]] = []
    failed: list[tuple[str, Attempt]] = []
    for command in COMMANDS:
        triggers = definer_triggers(rel, command)
        if not triggers or not writable(m.ctx, rel, command):
            continue
        fires = "; ".join(t.describe() for t in triggers)
        for user, other in pairs:
            attempts = write_attempts(m.rls, rel, command, columns, user, other, scope, m.ctx.config, fires=fires)
            leaks += [(command, a) for a in attempts if a.leaked]
            failed += [(command, a) for a in attempts if a.failed]
            if leaks:
                break  # shown for one pair: the other direction says the same
    if leaks:
        return [_finding(rel, leaks)], {"definer triggers": "LEAK"}
    if failed:  # neither a write nor a refusal: what the trigger would do was not seen
        return [_unproven(rel, failed)], {"definer triggers": "not proven"}
    return [], {"definer triggers": "verified"}


def _unproven(rel: Relation, failed: list[tuple[str, Attempt]]) -> Finding:
    shown = "\n".join(f"  {command}: as {a.caller}: {a.statement}\n    -> {a.error}" for command, a in failed[:3])
    more = f"\n  (and {len(failed) - 3} more)" if len(failed) > 3 else ""
    return Finding(
        RULE,
        Severity.INFO,
        ref(rel),
        f"A SECURITY DEFINER trigger on {rel.qualified}: not verified, writing another tenant's ids failed with an error "
        f"that is not a refusal (42501, or a RAISE of the trigger), so what the trigger would do was not seen:\n"
        f"{shown}{more}\nTo have it verified, refuse such a write with an error of the schema's own (a policy's WITH "
        "CHECK, or a RAISE in the trigger), or give the columns the check cannot fill a DEFAULT.",
        "",
        details={"commands": sorted({c for c, _ in failed}), "statements": [a.statement for _, a in failed],
                 "errors": [a.error for _, a in failed]},
    )


def _finding(rel: Relation, leaks: list[tuple[str, Attempt]]) -> Finding:
    shown = "\n".join(
        f"  {command}: as {a.caller}: {a.statement}\n    fired {a.trigger}\n    which then: "
        + "; ".join(c.describe() for c in a.changes)
        for command, a in leaks[:3]
    )
    more = f"\n  (and {len(leaks) - 3} more)" if len(leaks) > 3 else ""
    functions = sorted({quote(*t.function.split(".", 1)) + "()" for t in rel.triggers if t.security_definer})
    return Finding(
        RULE,
        Severity.ERROR,
        ref(rel),
        f"A SECURITY DEFINER trigger on {rel.qualified} runs with its owner's rights (RLS bypassed) on what a user "
        f"wrote, and reached another tenant's data:\n{shown}{more}",
        "-- let RLS apply to what the trigger writes (it then runs as the user who wrote the row):\n"
        + "\n".join(f"ALTER FUNCTION {f} SECURITY INVOKER;" for f in functions)
        + "\n-- or keep it SECURITY DEFINER and check inside it that the values it acts on (NEW's tenant, user and "
        "path columns) belong to the caller (the caller's memberships, by (SELECT auth.uid())), or pin those columns "
        "in the table's WITH CHECK",
        details={"commands": sorted({c for c, _ in leaks}), "statements": [a.statement for _, a in leaks]},
    )
