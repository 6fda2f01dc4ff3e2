"""The sweep's rules: one module each, registered here by id (ids are public interface).

A static rule is a pure function from a :class:`SweepContext` (the catalog of the exposed
schemas, read in bulk) to findings. A dynamic rule measures the database itself (plans,
isolation) for one object at a time; see ``auth_per_row`` and ``tenant_leak``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..catalog import Catalog, Function, Policy, Relation
from ..config import SweepConfig, TableConfig
from ..findings import Finding, ObjectRef, Severity
from ..tenancy import TenantKey, find_tenant_key

if TYPE_CHECKING:
    from ..impersonation import Principal
    from ..protocol import RlsProtocol

__all__ = [
    "API_ROLES", "RULES", "RUNNERS", "Check", "Measurement", "Rule", "SweepContext", "dynamic_rule", "ref", "rule",
]

API_ROLES = ("anon", "authenticated")
COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass(frozen=True)
class SweepContext:
    catalog: Catalog
    schemas: tuple[str, ...]
    config: SweepConfig = field(default_factory=SweepConfig)
    #: tenant keys read from the schema where neither the config nor a column name gives one
    #: (the tenant root's primary key), by relation oid
    inferred_keys: Mapping[int, TenantKey] = field(default_factory=dict)
    #: the principals' names by sub (the config's keys, or alice/bob when synthesized)
    names: Mapping[str, str] = field(default_factory=dict)
    #: tables the sweep could make no rows for, with why (:mod:`..synthesis`)
    unmade: Mapping[str, str] = field(default_factory=dict)

    def tables(self) -> Iterator[Relation]:
        return (r for r in self.catalog.relations if r.kind in ("r", "p") and r.schema in self.schemas)

    def platform_tables(self) -> Iterator[Relation]:
        """The platform's tables with the project's policies (storage.objects, storage.buckets),
        outside the swept schemas: for the isolation checks only."""
        return (r for r in self.catalog.relations if r.kind in ("r", "p") and r.schema not in self.schemas and r.policies)

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
        """The configured or guessed key; for the tenant root, its own key (not the user who
        created it), unless configured."""
        if rel.oid in self.inferred_keys:
            return self.inferred_keys[rel.oid]
        table = self.table_config(rel)
        if rel.kind in ("v", "m") and not (table.tenant_column or table.tenant_sql):
            inherited = self._view_key(rel)
            if inherited is not None:
                return inherited
        return find_tenant_key(rel, self.config)

    def _view_key(self, view: Relation) -> TenantKey | None:
        """A view's column that is its table's tenant key (``t.id`` of the tenant root, ``p.org_id``
        of a tenant table), as PostgreSQL resolved the view's output columns."""
        by_oid = {r.oid: r for r in self.catalog.relations}
        for name, oid, number in view.column_origins:
            table = by_oid.get(oid)
            if table is None or table.oid == view.oid:
                continue
            key = self.tenant_key(table)
            column = next((c.name for c in table.columns if c.position == number), None)
            if key is not None and key.column and column == key.column:
                return TenantKey(name, per_user=key.per_user)
        return None

    def whose_rows(self, rel: Relation) -> str | None:
        """Whose a table's rows are: "tenant" (a tenant key, or a foreign key to a table with
        one), "user" (a per-user key, or a foreign key to auth.users), or None (a catalogue:
        nobody's)."""
        key = self.tenant_key(rel)
        if key is not None:
            return "user" if key.per_user else "tenant"
        by_oid = {r.oid: r for r in self.catalog.relations}
        for fk in rel.foreign_keys():  # a row that points at a tenant's row is that tenant's
            parent = by_oid.get(fk.referenced_oid) if fk.referenced_oid and not fk.to_auth_users else None
            parent_key = self.tenant_key(parent) if parent is not None and parent.oid != rel.oid else None
            if parent_key is not None and not parent_key.per_user:
                return "tenant"
        if any(fk.to_auth_users for fk in rel.foreign_keys()):
            return "user"
        return None

    def expected_commands(self, rel: Relation) -> set[str] | None:
        commands = self.table_config(rel).commands
        return set(commands) if commands is not None else None


@dataclass(frozen=True)
class Check:
    """One item of the sweep: a rule (or a runner) on one object."""

    rule: str
    object: ObjectRef
    oid: int  # of the relation (a column's table) or the function

    @property
    def kind(self) -> str:  # table, view, function, column
        return self.object.kind


@dataclass(frozen=True)
class Measurement:
    """What a dynamic rule measures one object with, inside the item's transaction."""

    rls: RlsProtocol
    ctx: SweepContext
    check: Check
    principals: tuple[Principal, ...]
    memo: dict[str, Any]  # kept for the whole sweep (e.g. what auth.*() looks like in plans)
    options: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"fuzz_examples": 200}


Measured = tuple[list[Finding], dict[str, Any]]


@dataclass(frozen=True)
class Rule:
    """A registered rule: a stable id (public interface: ignores, reports), its usual
    severity, what it targets, and either a static ``check`` over the sweep's catalog or a
    dynamic ``measure`` of one object at a time. The finding shape is fixed
    (:class:`~pytest_rlscheck.findings.Finding`); ``categories`` and ``remediation`` are
    shown with it, as splinter's lints do."""

    id: str
    severity: Severity  # the usual severity; a finding may carry another
    targets: str  # "table", "view", "function", "column" (or "migration": reported at load)
    summary: str
    check: Callable[[SweepContext], Iterable[Finding]] | None = None
    measure: Callable[[Measurement], Measured] | None = None
    #: more kinds of object it checks, with a filter: tenant-leak also reads views and functions
    also: tuple[str, ...] = ()
    applies: Callable[[SweepContext, str, Any], bool] | None = None
    categories: tuple[str, ...] = ("SECURITY",)
    #: what one result adds to the summary's table row (``auth.uid() per query``, ``isolation``)
    table_columns: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    #: a runner reports findings under other rules' ids (constraint-fuzz: constraint-raises...)
    runner: bool = False
    option: str | None = None  # a runner that runs only with this sweep option

    @property
    def remediation(self) -> str:
        """Where the rule is explained, with what to do: its section of README.md."""
        return f"{DOCS}#{self.id}"


DOCS = "README.md"  # of this package: one section per rule, with its fix
RULES: dict[str, Rule] = {}
#: Runners: sweep items that report under other rules' ids (constraint-fuzz), kept apart so
#: that the rule list (ignores, SARIF, messages) holds only ids a finding can carry.
RUNNERS: dict[str, Rule] = {}


def registered(id: str) -> Rule:
    """The rule or runner ``id``."""
    return RULES.get(id) or RUNNERS[id]


def rule(
    id: str, severity: Severity, targets: str, summary: str, *, categories: tuple[str, ...] = ("SECURITY",)
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a static rule: ``check(ctx)`` yields its findings over the whole catalog."""

    def register(check: Callable[[SweepContext], Iterable[Finding]]) -> Callable[[SweepContext], Iterable[Finding]]:
        _register(Rule(id, severity, targets, summary, check=check, categories=categories))
        return check

    return register


def dynamic_rule(id: str, severity: Severity, targets: str, summary: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a dynamic rule: ``measure(m)`` measures one object (see :class:`Measurement`)."""

    def register(measure: Callable[[Measurement], Measured]) -> Callable[[Measurement], Measured]:
        _register(Rule(id, severity, targets, summary, measure=measure, **kwargs))
        return measure

    return register


def reported_rule(id: str, severity: Severity, targets: str, summary: str, **kwargs: Any) -> None:
    """Register a rule whose findings another part reports (a migration that fails, the fuzz)."""
    _register(Rule(id, severity, targets, summary, **kwargs))


def _register(new: Rule) -> None:
    if new.id in RULES or new.id in RUNNERS:
        raise ValueError(f"rule {new.id!r} is registered twice")
    (RUNNERS if new.runner else RULES)[new.id] = new


def ref(obj: Relation | Function) -> ObjectRef:
    """A table, view or function of the catalog as the object of a check or a finding."""
    if isinstance(obj, Function):
        return ObjectRef("function", obj.schema, obj.name, obj.arguments)
    return ObjectRef("view" if obj.is_view else "table", obj.schema, obj.name)


def function_name(fn: Function) -> str:
    return ref(fn).display


def policies_for(rel: Relation, command: str, role: str) -> list[Policy]:
    return [p for p in rel.policies if p.covers(command) and p.applies_to(role)]


MIGRATION_FAILED = "migration-failed"
CONSTRAINT_RAISES = "constraint-raises"
CONSTRAINT_ADMITS_NULL = "constraint-admits-null"
reported_rule(MIGRATION_FAILED, Severity.ERROR, "migration", "a migration or seed file does not apply",
              categories=("CORRECTNESS",))
# reported by the constraint-fuzz runner of --rlscheck-fuzz
reported_rule(CONSTRAINT_RAISES, Severity.ERROR, "column", "a CHECK constraint raises an error instead of rejecting",
              categories=("CORRECTNESS",))
reported_rule(CONSTRAINT_ADMITS_NULL, Severity.WARN, "column", "a CHECK that reads like it needs a value lets NULL pass",
              categories=("CORRECTNESS",))

from . import (  # noqa: E402,F401 - registration
    access_changed,
    auth_per_row,
    command_uncovered,
    constraint_fuzz,
    definer_exposed,
    definer_search_path,
    definer_trigger,
    existence_oracle,
    immutable_reads_session,
    insert_without_select,
    multiple_permissive,
    no_primary_key,
    policy_always_true,
    policy_rls_disabled,
    rls_disabled,
    rls_no_policy,
    tenant_column_nullable,
    tenant_escalation,
    tenant_leak,
    unindexed_fk,
    unindexed_policy_column,
    user_metadata_in_policy,
    view_bypasses_rls,
)
