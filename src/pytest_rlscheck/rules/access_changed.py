"""access-changed: who can do what, compared with what it was.

With a snapshot of the access matrix (``snapshot = "supabase/rlscheck-access.json"`` in
``[tool.rlscheck]``, or ``--rlscheck-snapshot=PATH``) or with the migrations at a git revision
(``--rlscheck-compare=REV``), each relation's row of the matrix (:mod:`..access`) is compared
with the one it had there, cell by cell: one item per relation, failing with every cell that
differs (``anon · select public.profiles: refused (policy) → all rows``). A relation added
since fails as new, one removed as removed. The row comes from the isolation check's own
measurement (:func:`.tenant_leak.measured`): the comparison runs no probe of its own.

``--rlscheck-snapshot-update`` accepts what changed: the items pass and the file is written.
"""

from __future__ import annotations

from typing import Any

from ..access import POLICY_COMMANDS, RelationAccess, Snapshot, changed_cells
from ..findings import Finding, Severity
from . import Measurement, SweepContext, dynamic_rule
from . import tenant_leak

RULE = "access-changed"
#: The sweep option that carries the :class:`~..access.Snapshot` to compare with.
OPTION = "snapshot"
#: The sweep option that says the run accepts the changes (--rlscheck-snapshot-update).
UPDATE_OPTION = "snapshot_update"
#: A check of a relation the snapshot has and the schema no longer does.
REMOVED = "removed"


def applies(ctx: SweepContext, kind: str, obj: Any) -> bool:
    """What tenant-leak measures (its row of the matrix), and each relation of the snapshot
    the schema no longer has."""
    return kind == REMOVED or tenant_leak.applies(ctx, kind, obj)


@dynamic_rule(RULE, Severity.ERROR, "table", "who can do what differs from the snapshot (or the compared revision)",
              also=("platform-table", "view", "function", REMOVED), applies=applies, option=OPTION,
              categories=("SECURITY",))
def run(m: Measurement) -> tuple[list[Finding], dict[str, Any]]:
    baseline: Snapshot = m.options[OPTION]
    name = m.check.object.display
    facts: dict[str, Any] = {}
    new = None
    if m.check.kind == REMOVED:
        facts["access_removed"] = True
    else:
        _, measured = tenant_leak.measured(m)
        facts["access"] = measured["access"]
        new = RelationAccess.from_dict(measured["access"]).categories()
    entry = baseline.relations.get(name)
    old = entry[1] if entry else None
    lines = changed_cells(name, old, new)
    if lines:
        facts["access_changed"] = lines
    if not lines or m.options.get(UPDATE_OPTION):
        return [], facts
    accept = ("--rlscheck-snapshot-update writes the snapshot anew; commit it with the migration if the change is "
              "intended" if baseline.source and not baseline.source.startswith("git ") else
              "review it: this is what the branch changes in who can do what")
    message = (f"Who can do what on {name} differs from {baseline.source or 'the snapshot'}:\n"
               + "\n".join(f"  {line}" for line in lines) + f"\n{accept}.")
    details: dict[str, Any] = {"changes": lines}
    if m.check.kind in ("table", "platform-table", "view") and new is not None:
        # where to look: the latest statement of the policies that decide the changed operations
        rel = m.ctx.catalog.relation(m.check.oid)
        ops = {op for who, cells in new.items() for op, outcome in cells.items()
               if (old or {}).get(who, {}).get(op) != outcome}
        commands = {c for op in ops for c in POLICY_COMMANDS.get(op, ())}
        policies = [p.name for p in rel.policies if any(p.covers(c) for c in commands)]
        if policies:
            details["policies"] = policies
    return [Finding(RULE, Severity.ERROR, m.check.object, message, details=details)], facts
