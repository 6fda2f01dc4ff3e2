"""Who can do what: the access matrix, and the snapshot it is compared with.

For every relation the API reaches (tables, views, callable functions), every principal
(anon, each configured or synthesized user, service_role) and every operation, one cell:
what the proof's probes got when they tried (:mod:`.isolation`, :mod:`.function_probes`),
as one outcome category, with the row counts behind it. No probe runs for the matrix: it is
read off the outcomes the isolation check already has. Where a principal was not tried (no
rows of its tenant, a per-user table's reads, service_role, RLS off, a function without
ids), the cell is read from the grants and policies instead and says so
(``measured: "no"``); where the other tenant's rows were measured but the user's own were
not (the write probes aim at the other tenant's rows), the own half is read from the
policies (``measured: "partly"``).

The snapshot (``supabase/rlscheck-access.json``) keeps the categories only, sorted: it
changes when access changes, not when the seed data does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalog import Function, Relation
    from .isolation import Outcome

__all__ = [
    "CATEGORIES", "Cell", "RelationAccess", "SNAPSHOT_VERSION", "Snapshot", "SnapshotError", "WIDTH", "changed_cells",
    "function_access", "infer_cell", "markdown_table", "measured_cell", "terminal_lines", "wider",
]

TABLE_OPERATIONS = ("select", "insert", "update", "delete", "move", "upsert")
OPERATIONS = (*TABLE_OPERATIONS, "execute")

# The outcome categories (stable: the snapshot stores them).
PRIVILEGE = "refused (privilege)"  # the role has not the table's (or function's) privilege
POLICY = "refused (policy)"  # RLS refused it, or let none of the rows through
SCHEMA = "refused (schema)"  # a trigger, a function or a constraint refused it
OWN = "own rows only"  # allowed on the principal's own tenant's rows (own user's, per user), not on others'
OTHERS = "others' rows"  # allowed on another tenant's (another user's, for anon: any tenant's) rows
ALL = "all rows"  # every row: RLS off, or a role that bypasses it, or a policy that admits every row
ALLOWED = "allowed"  # allowed, with no tenant to tell own rows from others' (a catalogue, a function)
ERROR = "error"  # the attempt failed for another reason: neither allowed nor refused was shown
NA = "n/a"  # the operation does not apply (no row to move, no key to upsert on)
CATEGORIES = (PRIVILEGE, POLICY, SCHEMA, OWN, OTHERS, ALL, ALLOWED, ERROR, NA)
#: One character each, for the terminal's line per relation.
CODES = {PRIVILEGE: "-", POLICY: "x", SCHEMA: "s", OWN: "o", OTHERS: "!", ALL: "A", ALLOWED: "+", ERROR: "?", NA: "."}
LEGEND = ("- no privilege, x refused by policy, s refused by the schema, o own rows only, ! others' rows, A all rows, "
          "+ allowed, ? error, . n/a; * read from grants and policies, not measured; ~ the other tenant's rows "
          "measured, the own ones read from the policies")
#: How a cell that was not (or only partly) measured is marked, after its outcome.
MARKS = {"no": "*", "partly": "~"}
#: The privileges each operation needs, and the commands whose policies decide it.
PRIVILEGES = {"select": ("SELECT",), "insert": ("INSERT",), "update": ("UPDATE",), "delete": ("DELETE",),
              "move": ("UPDATE",), "upsert": ("INSERT", "UPDATE")}
POLICY_COMMANDS = PRIVILEGES
#: How far each category opens access (the wider of two attempts' cells is the cell).
WIDTH = {NA: 0, PRIVILEGE: 1, POLICY: 2, SCHEMA: 3, OWN: 4, ALLOWED: 5, ERROR: 6, OTHERS: 7, ALL: 8}
SNAPSHOT_VERSION = 1
ANON = "anon"
SERVICE_ROLE = "service_role"


@dataclass(frozen=True)
class Cell:
    """One principal and operation on one relation: the outcome, whether it was measured
    (``yes``; ``partly``: the other tenant's rows measured, the own ones read from the
    policies; ``no``: read from grants and policies), what happened, and the row counts."""

    outcome: str
    measured: str = "yes"
    detail: str = ""
    rows: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "measured": self.measured, "detail": self.detail, "rows": dict(self.rows)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        return cls(str(data["outcome"]), str(data.get("measured", "yes")), str(data.get("detail", "")),
                   {str(k): int(v) for k, v in dict(data.get("rows") or {}).items()})

    @property
    def code(self) -> str:
        return CODES.get(self.outcome, "?") + MARKS.get(self.measured, " ")


@dataclass(frozen=True)
class RelationAccess:
    """The matrix's row for one relation: principal -> operation -> cell."""

    relation: str  # as the sweep's items name it (public.messages, public.f(p_org uuid))
    kind: str  # table, view, function
    cells: Mapping[str, Mapping[str, Cell]]

    @property
    def operations(self) -> tuple[str, ...]:
        return ("execute",) if self.kind == "function" else ("select",) if self.kind == "view" else TABLE_OPERATIONS

    def categories(self) -> dict[str, dict[str, str]]:
        return {who: {op: cell.outcome for op, cell in ops.items()} for who, ops in self.cells.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"relation": self.relation, "kind": self.kind,
                "cells": {who: {op: c.to_dict() for op, c in ops.items()} for who, ops in self.cells.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RelationAccess:
        return cls(str(data["relation"]), str(data["kind"]),
                   {str(w): {str(o): Cell.from_dict(c) for o, c in ops.items()} for w, ops in data["cells"].items()})


# -- cells from what the probes got -------------------------------------------------------------


def wider(a: Cell | None, b: Cell) -> Cell:
    """The cell of the two that shows the wider access (``b`` when there is no ``a``)."""
    return b if a is None or WIDTH[b.outcome] > WIDTH[a.outcome] else a


def infer_cell(rel: Relation, role: str, op: str, *, bypasses: bool = False, tenant: bool = True,
               why: str = "not tried") -> Cell:
    """A cell read from the grants and the policies, for a principal the probes did not try:
    no privilege, RLS off or bypassed (every row), no permissive policy (refused), a
    permissive policy whose expression is constant true with no restrictive one (every row),
    otherwise the rows its policies admit (the own tenant's, by the tenant key)."""
    detail = f"not measured ({why}): read from grants and policies"
    missing = [p for p in PRIVILEGES[op] if not rel.granted(role, p)]
    if missing:
        return Cell(PRIVILEGE, "no", f"{detail}: {role} has no {' or '.join(missing)} privilege")
    if bypasses:
        return Cell(ALL, "no", f"{detail}: {role} bypasses RLS")
    if not rel.rls_enabled:
        return Cell(ALL, "no", f"{detail}: RLS is off")
    commands = POLICY_COMMANDS[op]
    mine = [p for p in rel.policies if p.applies_to(role) and any(p.covers(c) for c in commands)]
    permissive = [p for p in mine if p.permissive]
    if not permissive:
        return Cell(POLICY, "no", f"{detail}: no permissive {'/'.join(commands)} policy for {role}")
    restrictive = [p for p in mine if not p.permissive]
    every = [p for p in permissive if _admits_every_row(p, op)]
    if every and not restrictive:
        return Cell(ALL, "no", f"{detail}: policy \"{every[0].name}\" admits every row")
    names = ", ".join(f'"{p.name}"' for p in permissive)
    if not tenant or role == ANON:
        return Cell(ALLOWED, "no", f"{detail}: the rows {names} admit{'s' if len(permissive) == 1 else ''}")
    return Cell(OWN, "no", f"{detail}: the rows {names} admit{'s' if len(permissive) == 1 else ''}, by the tenant key")


def _admits_every_row(policy: Any, op: str) -> bool:
    """A policy whose expression for ``op`` is constant true (``using (true)``): an insert is
    checked by WITH CHECK (an ALL policy's USING when it has none), the rest by USING."""
    if op == "insert" and policy.with_check is not None:
        return bool(policy.check_facts.constant_true)
    return policy.using is not None and bool(policy.using_facts.constant_true)


def measured_cell(rel: Relation, role: str, op: str, shapes: Sequence[Outcome], *, tenant: bool = True) -> Cell:
    """A cell from the isolation check's outcomes for one operation (each of its shapes:
    the plain update and the one without a WHERE, ...): the widest access any shape got."""
    rows: dict[str, int] = {}
    for o in shapes:
        if o.own_rows is not None:
            rows["own_reached"] = max(rows.get("own_reached", 0), o.own_rows)
        if o.reached is not None:
            rows["others_reached"] = max(rows.get("others_reached", 0), o.reached)
        if o.total is not None:
            rows["others_total"] = max(rows.get("others_total", 0), o.total)
    leaks = [o for o in shapes if o.isolated is False]
    if leaks:
        return Cell(OTHERS, "yes", "; ".join(f"{o.op}: {o.detail}" for o in leaks), rows)
    failed = [o for o in shapes if o.isolated is None]
    if failed:
        return Cell(ERROR, "yes", "; ".join(f"{o.op}: {o.detail}" for o in failed), rows)
    bys = {o.by for o in shapes}
    detail = "; ".join(f"{o.op}: {o.detail}" for o in shapes)
    if bys <= {"n/a"}:
        return Cell(NA, "yes", detail, rows)
    if bys <= {"privilege", "n/a"}:
        return Cell(PRIVILEGE, "yes", detail, rows)
    if "own" in bys:
        return Cell(OWN if tenant else ALLOWED, "yes", detail, rows)
    refused = SCHEMA if "schema" in bys and "policy" not in bys else POLICY
    if "own_reached" in rows or op == "move":  # the own rows were counted (a move has no own half)
        return Cell(refused, "yes", detail, rows)
    own = infer_cell(rel, role, op, tenant=tenant, why="the probes aim at the other tenant's rows")
    if own.outcome in (OWN, ALLOWED, ALL):  # theirs refused, own allowed as far as the policies tell
        return Cell(OWN if tenant else ALLOWED, "partly", f"{detail}; own rows: {own.detail}", rows)
    return Cell(refused, "yes", detail, rows)


def read_cell(own: int | None, leaked: bool, error: str | None, detail: str) -> Cell:
    """A read of a view or a function's result (the foreign-rows check): leaked, or the own
    rows read (0: none), or an error."""
    if leaked:
        return Cell(OTHERS, "yes", detail)
    if error:
        return Cell(ERROR, "yes", error)
    if own is None:
        return Cell(POLICY, "yes", detail)
    return Cell(OWN if own else POLICY, "yes", detail, {"own_reached": own})


def function_access(name: str, fn: Function, who: Sequence[tuple[str, str]], *, bypasses: Mapping[str, bool],
                    measured: Mapping[str, Cell] | None = None) -> RelationAccess:
    """A function's row: execute, measured where the probes called it, else by its EXECUTE
    grant (a function the probes did not call does what its body does, for anyone it lets in)."""
    cells: dict[str, dict[str, Cell]] = {}
    for person, role in who:
        if measured and person in measured:
            cells[person] = {"execute": measured[person]}
        elif not fn.executable(role):
            cells[person] = {"execute": Cell(PRIVILEGE, "no", f"{role} has no EXECUTE privilege")}
        else:
            cells[person] = {"execute": Cell(ALL if bypasses.get(role) else ALLOWED, "no",
                                           "not measured (the probes did not call it): read from its EXECUTE grant")}
    return RelationAccess(name, "function", cells)


# -- the snapshot ----------------------------------------------------------------------------


class SnapshotError(Exception):
    """A snapshot file that cannot be read."""


@dataclass(frozen=True)
class Snapshot:
    """What the access was: relation -> (kind, principal -> operation -> category)."""

    relations: Mapping[str, tuple[str, Mapping[str, Mapping[str, str]]]]
    source: str = ""  # where it came from, for messages: the file, or "the migrations at REV"

    @classmethod
    def of(cls, rows: Iterable[RelationAccess], source: str = "") -> Snapshot:
        return cls({r.relation: (r.kind, r.categories()) for r in rows}, source)

    def to_json(self) -> str:
        """Deterministic: sorted keys, one layout, a newline at the end."""
        data = {
            "rlscheck_access": SNAPSHOT_VERSION,
            "relations": {name: {"kind": kind, "access": {w: dict(sorted(ops.items())) for w, ops in sorted(access.items())}}
                          for name, (kind, access) in sorted(self.relations.items())},
        }
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> Snapshot:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SnapshotError(f"{source}: not JSON ({exc}); write it again with --rlscheck-snapshot-update") from None
        if not isinstance(data, dict) or data.get("rlscheck_access") != SNAPSHOT_VERSION or not isinstance(
            data.get("relations"), dict
        ):
            raise SnapshotError(f"{source}: not an rlscheck access snapshot (version {SNAPSHOT_VERSION}); write it "
                                "again with --rlscheck-snapshot-update")
        relations: dict[str, tuple[str, dict[str, dict[str, str]]]] = {}
        for name, entry in data["relations"].items():
            try:
                access = {str(w): {str(o): str(c) for o, c in ops.items()} for w, ops in entry["access"].items()}
                relations[str(name)] = (str(entry["kind"]), access)
            except (KeyError, TypeError, AttributeError):
                raise SnapshotError(f"{source}: the entry for {name!r} is malformed; write the file again with "
                                    "--rlscheck-snapshot-update") from None
        return cls(relations, source)

    @classmethod
    def read(cls, path: Path) -> Snapshot | None:
        """The snapshot at ``path``; None when there is no such file."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SnapshotError(f"{path}: cannot be read: {exc}") from None
        return cls.from_json(text, str(path))

    def merged(self, rows: Iterable[RelationAccess], removed: Iterable[str] = ()) -> Snapshot:
        """This snapshot with the rows measured now in place of theirs, and ``removed`` gone
        (relations this run did not measure, deselected, stay as they were)."""
        relations = dict(self.relations)
        for name in removed:
            relations.pop(name, None)
        relations.update({r.relation: (r.kind, r.categories()) for r in rows})
        return Snapshot(relations, self.source)


def changed_cells(relation: str, old: Mapping[str, Mapping[str, str]] | None,
                  new: Mapping[str, Mapping[str, str]] | None) -> list[str]:
    """Every cell that differs, as ``anon · select public.profiles: refused (policy) → all rows``;
    a relation added or removed as one line of its own first."""
    lines = []
    if old is None and new is not None:
        lines.append(f"{relation}: new (not in the snapshot)")
    elif new is None and old is not None:
        lines.append(f"{relation}: removed (in the snapshot, no longer in the schema)")
    old, new = old or {}, new or {}
    for who in sorted({*old, *new}):
        before, after = old.get(who, {}), new.get(who, {})
        for op in [o for o in OPERATIONS if o in {*before, *after}]:
            if before.get(op) != after.get(op):
                lines.append(f"{who} · {op} {relation}: {before.get(op, 'absent')} → {after.get(op, 'absent')}")
    return lines


# -- showing it ------------------------------------------------------------------------------


def _groups(row: RelationAccess) -> list[tuple[list[str], str]]:
    """The principals with the same codes together: (names, codes)."""
    out: dict[str, list[str]] = {}
    for who, ops in row.cells.items():
        codes = " ".join(ops[op].code if op in ops else ". " for op in row.operations).rstrip()
        out.setdefault(codes, []).append(who)
    return [(names, codes) for codes, names in out.items()]


def terminal_lines(rows: Sequence[RelationAccess]) -> list[str]:
    """One line per relation: the principals (those alike together), a code per operation."""
    if not rows:
        return []
    width = max(len(r.relation) for r in rows)
    lines = ["access (S I U D M X: select insert update delete move upsert; views S, functions E: execute)",
             f"  {LEGEND}"]
    for row in sorted(rows, key=lambda r: (r.kind != "table", r.relation)):
        parts = [f"{'/'.join(names)} {codes}" for names, codes in _groups(row)]
        lines.append(f"{row.relation:<{width}}  " + "   ".join(parts))
    return lines


_MD = {PRIVILEGE: "🚫 privilege", POLICY: "✗ policy", SCHEMA: "✗ schema", OWN: "own", OTHERS: "**others'**", ALL: "all",
       ALLOWED: "allowed", ERROR: "error", NA: "–"}


def markdown_table(rows: Sequence[RelationAccess]) -> list[str]:
    """The matrix as a Markdown table (a pull-request comment): a row per relation and
    principal, a column per operation; ``*`` marks a cell read from grants and policies, ``~``
    one whose own half is."""
    if not rows:
        return []
    operations = [op for op in OPERATIONS if any(op in ops for row in rows for ops in row.cells.values())]
    lines = ["| relation | principal | " + " | ".join(operations) + " |", "|---|---|" + "---|" * len(operations)]
    for row in sorted(rows, key=lambda r: (r.kind != "table", r.relation)):
        for who, ops in row.cells.items():
            cells = []
            for op in operations:
                cell = ops.get(op)
                cells.append("" if cell is None else _MD.get(cell.outcome, cell.outcome) + _md_mark(cell))
            lines.append(f"| `{row.relation}` | {who} | " + " | ".join(cells) + " |")
    lines += ["", "own: own tenant's rows only · others': another tenant's rows · all: every row · "
              "✗: refused · \\*: read from grants and policies, not measured · \\~: the other tenant's rows measured, "
              "the own ones read from the policies"]
    return lines


def _md_mark(cell: Cell) -> str:
    mark = MARKS.get(cell.measured, "")
    return "\\" + mark if mark else ""  # escaped: Markdown reads * and ~ as emphasis and strikethrough
