"""The sweep's rules: one module each, registered here by id (ids are public interface).

A static rule is a pure function from a :class:`SweepContext` (the catalog of the exposed
schemas, read in bulk) to findings. A dynamic rule measures the database itself (plans,
isolation) for one object at a time; see ``auth_per_row`` and ``tenant_leak``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..catalog import Catalog, Function, Policy, Relation
from ..config import SweepConfig, TableConfig
from ..findings import Finding, ObjectRef, Severity
from ..isolation import TenantKey, find_tenant_key

__all__ = ["API_ROLES", "RULES", "Rule", "SweepContext", "ref", "rule"]

API_ROLES = ("anon", "authenticated")
COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class SweepContext:
    catalog: Catalog
    schemas: tuple[str, ...]
    config: SweepConfig = field(default_factory=SweepConfig)

    def tables(self) -> Iterator[Relation]:
        return (r for r in self.catalog.relations if r.kind in ("r", "p") and r.schema in self.schemas)

    def views(self) -> Iterator[Relation]:
        return (r for r in self.catalog.relations if r.kind in ("v", "m") and r.schema in self.schemas)

    def functions(self) -> Iterator[Function]:
        return (f for f in self.catalog.functions if f.schema in self.schemas)

    def api_privileges(self, rel: Relation) -> set[str]:
        """What anon/authenticated (directly or through PUBLIC) may do with ``rel``."""
        return {p for g, p in rel.grants if g in (*API_ROLES, "public")}

    def api_commands(self, rel: Relation) -> set[str]:
        return self.api_privileges(rel) & set(COMMANDS)

    def table_config(self, rel: Relation) -> TableConfig:
        return self.config.table(rel.qualified)

    def tenant_key(self, rel: Relation) -> TenantKey | None:
        return find_tenant_key(rel, self.config)

    def expected_commands(self, rel: Relation) -> set[str] | None:
        commands = self.table_config(rel).commands
        return set(commands) if commands is not None else None


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity  # the usual severity; a finding may carry another
    targets: str  # "table", "view" or "function"
    summary: str
    check: Callable[[SweepContext], Iterable[Finding]] | None = None  # None: dynamic


RULES: dict[str, Rule] = {}


def rule(id: str, severity: Severity, targets: str, summary: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(check: Callable[[SweepContext], Iterable[Finding]]) -> Callable[[SweepContext], Iterable[Finding]]:
        RULES[id] = Rule(id, severity, targets, summary, check)
        return check

    return register


def dynamic_rule(id: str, severity: Severity, targets: str, summary: str) -> None:
    RULES[id] = Rule(id, severity, targets, summary, None)


def ref(obj: Relation | Function) -> ObjectRef:
    """A table, view or function of the catalog as the object of a check or a finding."""
    if isinstance(obj, Function):
        return ObjectRef("function", obj.schema, obj.name, obj.arguments)
    return ObjectRef("view" if obj.is_view else "table", obj.schema, obj.name)


def function_name(fn: Function) -> str:
    return ref(fn).display


def calls_unwrapped(text: str | None, names: Iterable[str]) -> bool:
    """Whether ``text`` (a policy expression as PostgreSQL prints it) calls one of ``names``
    outside a ``( SELECT ... )``."""
    if not text:
        return False
    for name in names:
        for m in re.finditer(rf"\b{re.escape(name)}\(", text):
            if not re.search(r"\(\s*SELECT\s+\(?$", text[: m.start()], re.I):
                return True
    return False


def policies_for(rel: Relation, command: str, role: str) -> list[Policy]:
    return [p for p in rel.policies if p.covers(command) and (role in p.roles or "public" in p.roles)]


dynamic_rule("migration-failed", Severity.ERROR, "migration", "a migration or seed file does not apply")
# reported by the constraint-fuzz items of --rlscheck-fuzz
dynamic_rule("constraint-raises", Severity.ERROR, "column", "a CHECK constraint raises an error instead of rejecting")
dynamic_rule("constraint-admits-null", Severity.WARN, "column", "a CHECK that reads like it needs a value lets NULL pass")

from . import (  # noqa: E402,F401 - registration
    auth_per_row,
    command_uncovered,
    definer_exposed,
    definer_search_path,
    insert_without_select,
    multiple_permissive,
    no_primary_key,
    policy_always_true,
    policy_rls_disabled,
    rls_disabled,
    rls_no_policy,
    tenant_column_nullable,
    tenant_leak,
    unindexed_fk,
    unindexed_policy_column,
    user_metadata_in_policy,
    view_bypasses_rls,
)
