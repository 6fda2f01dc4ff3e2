"""Reading ``EXPLAIN (ANALYZE, VERBOSE, FORMAT JSON)``: the node tree, InitPlans and
SubPlans, and how many times a function ran for one statement.

How often an expression runs depends on where it sits in the plan:

* in the output of an InitPlan, or anywhere inside a hashed SubPlan: as often as that
  node ran (once, unless the InitPlan depends on an outer row);
* in ``Index Cond``, ``One-Time Filter``, ``TID Cond`` or a ``Function Call``: once per
  loop of its node;
* in ``Filter``: once per row examined (rows kept + rows removed) per loop — an upper
  bound when the filter has several conditions, since PostgreSQL stops at the first
  false one;
* in ``Join Filter``: likewise with the rows removed by the join filter; a filter that
  starts with a constant ``false AND`` (a command no policy grants) runs nothing after it;
* in an ``Output`` the node computes itself (not passed up from a child): once per output
  row per loop, or once per input row for a ``ProjectSet``;
* inside a correlated SubPlan: its nodes ran ``loops`` times, which the rules above
  already count.

PostgreSQL ≤ 16 names InitPlans ``InitPlan 1 (returns $0)`` and refers to ``$0``;
PostgreSQL ≥ 17 names them ``InitPlan 1`` and refers to ``(InitPlan 1).col1``. Both are read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CallSite", "FunctionPattern", "Plan", "PlanNode", "SubPlanRef"]

#: ``(false AND ...)``: PostgreSQL stops at the constant and evaluates nothing after it.
_FALSE_FIRST = re.compile(r"^\(*\s*false\s+AND\b", re.IGNORECASE)

#: Fields that hold expressions, and how often each runs per loop of its node.
PER_LOOP_FIELDS = ("Index Cond", "One-Time Filter", "TID Cond", "Function Call", "Table Function Call", "Order By")
PER_ROW_FIELDS = ("Hash Cond", "Merge Cond")
#: Nodes that only pass their child's rows up (their Output is computed below them).
PASS_THROUGH = {
    "Sort", "Incremental Sort", "Hash", "Materialize", "Memoize", "Limit", "Unique", "Gather",
    "Gather Merge", "Append", "Merge Append", "LockRows", "SetOp",
}
#: Fields that name expressions a child computed.
REFERENCE_FIELDS = ("Sort Key", "Group Key", "Presorted Key", "Cache Key")
_SUBPLAN_NAME = re.compile(r"^(InitPlan|SubPlan|CTE)\s+(\S+)(?:\s+\(returns (.*)\))?$")
_HASHED = re.compile(r"hashed SubPlan (\d+)\b")


@dataclass(frozen=True)
class FunctionPattern:
    """How a function shows up in EXPLAIN VERBOSE text: by name, or by its inlined body."""

    name: str  # as the user wrote it, e.g. "auth.uid"
    regex: re.Pattern[str]
    inlined: bool
    shown_as: str  # what it looks like in a plan, for messages
    tracked: bool = False  # a user function PostgreSQL counts calls of (track_functions)
    qualified: str = ""  # schema.name when known
    exclude: tuple[re.Pattern[str], ...] = ()  # text to ignore first (other functions' inlined bodies)

    def count(self, expression: str) -> int:
        for pattern in self.exclude:
            expression = pattern.sub(" ", expression)
        return len(self.regex.findall(expression))

    @classmethod
    def by_name(cls, name: str, *, tracked: bool = False, qualified: str = "") -> FunctionPattern:
        schema, _, bare = name.rpartition(".")
        qualifier = rf'(?:"?{re.escape(schema)}"?\.)?' if schema else r'(?:"?\w+"?\.)?'
        regex = re.compile(rf'(?<![\w."]){qualifier}"?{re.escape(bare)}"?\(')
        return cls(name, regex, False, f"{name}(…)", tracked, qualified or name)


@dataclass(frozen=True)
class SubPlanRef:
    kind: str  # "InitPlan", "SubPlan" or "CTE"
    number: str
    hashed: bool
    returns: tuple[str, ...]  # PG ≤ 16: ("$0",); PG ≥ 17: ("(InitPlan 1).col1",) when known
    node: PlanNode

    @property
    def name(self) -> str:
        return f"{self.kind} {self.number}"


@dataclass(frozen=True)
class PlanNode:
    node_type: str
    relation: str | None
    alias: str | None
    index_name: str | None
    parent_relationship: str | None
    subplan_name: str | None
    loops: int
    rows: float  # per loop, as EXPLAIN reports it
    removed_by_filter: float
    removed_by_join_filter: float
    expressions: Mapping[str, tuple[str, ...]]
    children: tuple[PlanNode, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanNode:
        expressions: dict[str, tuple[str, ...]] = {}
        for key, value in data.items():
            if key == "Output" or key in REFERENCE_FIELDS:
                expressions[key] = tuple(value)
            elif isinstance(value, str) and (
                key in ("Filter", "Join Filter", "Recheck Cond") or key in PER_LOOP_FIELDS or key in PER_ROW_FIELDS
            ):
                expressions[key] = (value,)
        schema, name = data.get("Schema"), data.get("Relation Name")
        return cls(
            node_type=data["Node Type"],
            relation=f"{schema}.{name}" if schema and name else name,
            alias=data.get("Alias"),
            index_name=data.get("Index Name"),
            parent_relationship=data.get("Parent Relationship"),
            subplan_name=data.get("Subplan Name"),
            loops=int(data.get("Actual Loops", 0)),
            rows=float(data.get("Actual Rows", 0)),
            removed_by_filter=float(data.get("Rows Removed by Filter", 0)),
            removed_by_join_filter=float(data.get("Rows Removed by Join Filter", 0)),
            expressions=expressions,
            children=tuple(cls.from_json(child) for child in data.get("Plans", ())),
            raw=data,
        )

    def walk(self) -> Iterator[PlanNode]:
        yield self
        for child in self.children:
            yield from child.walk()

    @property
    def label(self) -> str:
        text = self.node_type
        if self.index_name:
            text += f" using {self.index_name}"
        if self.relation:
            text += f" on {self.relation}"
            if self.alias and self.alias != self.relation.rpartition(".")[2]:
                text += f" {self.alias}"
        return text

    def evaluations_per_occurrence(self, field_name: str, expression: str) -> int:
        """How many times an expression at ``field_name`` of this node ran."""
        loops = self.loops
        if field_name in PER_LOOP_FIELDS:
            return loops
        if field_name == "Filter":
            return round((self.rows + self.removed_by_filter) * loops)
        if field_name == "Join Filter":
            return round((self.rows + self.removed_by_join_filter) * loops)
        if field_name in PER_ROW_FIELDS:
            return round(self.rows * loops)
        if field_name == "Output":
            if self.node_type == "ProjectSet":
                return sum(round(c.rows * c.loops) for c in self._outer_children())
            return round(self.rows * loops)
        if field_name == "Recheck Cond":
            recheck = float(self.raw.get("Rows Removed by Index Recheck", 0))
            return round(recheck * loops)  # only lossy pages are rechecked
        return 0  # REFERENCE_FIELDS: computed by a child, counted there

    def _outer_children(self) -> list[PlanNode]:
        return [c for c in self.children if c.parent_relationship not in ("InitPlan", "SubPlan")]

    def computes_output(self, expression: str) -> bool:
        """False when the expression is only passed up from a child's output."""
        if self.node_type in PASS_THROUGH and self._outer_children():
            return False
        return not any(expression in child.expressions.get("Output", ()) for child in self._outer_children())


@dataclass(frozen=True)
class CallSite:
    """One place a function appears in a plan, and how many times it ran there."""

    node: PlanNode
    field: str
    expression: str
    occurrences: int
    evaluations: int
    within: tuple[str, ...]  # enclosing InitPlans/SubPlans, outermost first

    def describe(self) -> str:
        where = f"{self.node.label} — {self.field}"
        if self.within:
            where += f" (inside {' › '.join(self.within)})"
        return f"{where}: ran {self.evaluations} time{'s' if self.evaluations != 1 else ''}"


class Plan:
    """One statement's plan, as run by EXPLAIN ANALYZE."""

    def __init__(
        self,
        explain: Sequence[Mapping[str, Any]] | Mapping[str, Any],
        *,
        statement: str = "",
        patterns: Callable[[str], FunctionPattern] | None = None,
        exact_calls: Mapping[str, int] | None = None,
        identity: str = "",
    ) -> None:
        document = explain[0] if isinstance(explain, Sequence) else explain
        self.raw = document
        self.root = PlanNode.from_json(document["Plan"])
        self.statement = statement
        self.identity = identity
        self.planning_ms = float(document.get("Planning Time", 0.0))
        self.execution_ms = float(document.get("Execution Time", 0.0))
        self._patterns = patterns or FunctionPattern.by_name
        self._exact = None if exact_calls is None else dict(exact_calls)

    # -- structure ------------------------------------------------------------------

    def nodes(self) -> Iterator[PlanNode]:
        return self.root.walk()

    @property
    def subplans(self) -> list[SubPlanRef]:
        """Every InitPlan, SubPlan and CTE, with whether a SubPlan is hashed."""
        texts = " ".join(e for n in self.nodes() for exprs in n.expressions.values() for e in exprs)
        hashed = set(_HASHED.findall(texts))
        found = []
        for node in self.nodes():
            m = _SUBPLAN_NAME.match(node.subplan_name or "")
            if not m:
                continue
            kind, number, returns = m.group(1), m.group(2), m.group(3)
            if returns:
                params = tuple(p.strip() for p in returns.split(","))
            elif kind == "InitPlan":
                params = tuple(sorted(set(re.findall(rf"\(InitPlan {number}\)\.col\d+", texts))))
            else:
                params = ()
            found.append(SubPlanRef(kind, number, kind == "SubPlan" and number in hashed, params, node))
        return found

    @property
    def initplans(self) -> list[SubPlanRef]:
        return [s for s in self.subplans if s.kind == "InitPlan"]

    @property
    def indexes_used(self) -> list[str]:
        return [n.index_name for n in self.nodes() if n.index_name]

    # -- function evaluations -------------------------------------------------------

    def call_sites(self, function: str = "auth.uid") -> list[CallSite]:
        pattern = self._patterns(function)
        sites: list[CallSite] = []
        self._collect(self.root, pattern, (), sites)
        return sites

    def _collect(self, node: PlanNode, pattern: FunctionPattern, within: tuple[str, ...], out: list[CallSite]) -> None:
        for field_name, expressions in node.expressions.items():
            if field_name in REFERENCE_FIELDS:
                continue
            for expression in expressions:
                occurrences = pattern.count(expression)
                if not occurrences or field_name == "Output" and not node.computes_output(expression):
                    continue
                each = 0 if _FALSE_FIRST.match(expression) else node.evaluations_per_occurrence(field_name, expression)
                out.append(CallSite(node, field_name, expression, occurrences, each * occurrences, within))
        for child in node.children:
            inner = within
            if child.parent_relationship in ("InitPlan", "SubPlan") and child.subplan_name:
                name = child.subplan_name.split(" (returns")[0]
                hashed = child.parent_relationship == "SubPlan" and self._is_hashed(name)
                inner = (*within, f"hashed {name}" if hashed else name)
            self._collect(child, pattern, inner, out)

    def _is_hashed(self, name: str) -> bool:
        number = name.split()[-1]
        return any(
            re.search(rf"hashed SubPlan {number}\b", e)
            for n in self.nodes()
            for exprs in n.expressions.values()
            for e in exprs
        )

    def evaluations(self, function: str = "auth.uid") -> int:
        """How many times ``function`` ran for the statement, read from the plan."""
        return sum(site.evaluations for site in self.call_sites(function))

    def exact_calls(self, function: str) -> int | None:
        """Calls counted by PostgreSQL (track_functions) for a user function that was not
        inlined; None where that does not apply (an inlined SQL function, a built-in, or
        no right to turn counting on)."""
        if self._exact is None:
            return None
        pattern = self._patterns(function)
        if pattern.inlined or not pattern.tracked:
            return None
        return int(self._exact.get(pattern.qualified, 0))

    # -- display --------------------------------------------------------------------

    def render(self, *, max_expression: int = 160) -> str:
        """A compact EXPLAIN-like text of the plan, for failure messages."""
        lines: list[str] = []
        self._render(self.root, 0, lines, max_expression)
        return "\n".join(lines)

    def _render(self, node: PlanNode, depth: int, lines: list[str], width: int) -> None:
        pad = "  " * depth
        head = f"{node.subplan_name}: " if node.subplan_name else ""
        stats = f"(rows={node.rows:g} loops={node.loops})" if node.loops else "(never executed)"
        lines.append(f"{pad}{head}{node.label} {stats}")
        for key in ("Index Cond", "Filter", "Join Filter", "Hash Cond", "One-Time Filter", "Function Call"):
            for expression in node.expressions.get(key, ()):
                text = expression if len(expression) <= width else expression[: width - 1] + "…"
                lines.append(f"{pad}    {key}: {text}")
        if node.removed_by_filter:
            lines.append(f"{pad}    Rows Removed by Filter: {node.removed_by_filter:g}")
        for child in node.children:
            self._render(child, depth + 1, lines, width)
