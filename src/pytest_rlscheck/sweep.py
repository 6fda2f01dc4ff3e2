"""The ``--rlscheck`` sweep: which checks exist (one per rule and object), and running one.

Static rules run once over a catalog read in bulk when the sweep is prepared; dynamic rules
(``auth-per-row``, ``tenant-leak``) run for one object when its item runs, inside a
transaction that is rolled back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .catalog import Catalog, Relation
from .client import Rls
from .config import SweepConfig
from .findings import Finding, ObjectRef, Severity
from .locate import creation_sites
from .migrations import load_files
from .rules import API_ROLES, COMMANDS, RULES, SweepContext, ref
from .rules import auth_per_row, tenant_leak
from .session import RlsSession

__all__ = ["Check", "CheckResult", "Sweep"]

DEFAULT_SCHEMAS = ("public",)


@dataclass(frozen=True)
class Check:
    rule: str
    object: ObjectRef
    oid: int  # of the relation (a column's table) or the function

    @property
    def kind(self) -> str:  # table, view, function, column
        return self.object.kind


@dataclass(frozen=True)
class CheckResult:
    """What one check found, and what the summary needs to know about its object."""

    check: Check
    findings: tuple[Finding, ...]
    ignored: tuple[tuple[Finding, str], ...]
    facts: Mapping[str, Any]

    def failing(self, threshold: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity >= threshold]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.check.rule,
            "object": self.check.object.display,
            "kind": self.check.kind,
            "findings": [f.to_dict() for f in self.findings],
            "ignored": [{**f.to_dict(), "reason": reason} for f, reason in self.ignored],
            "facts": dict(self.facts),
        }


FUZZ = "constraint-fuzz"  # the item that reports constraint-raises and constraint-admits-null


class Sweep:
    def __init__(self, session: RlsSession, *, fuzz_examples: int | None = None) -> None:
        self.session = session
        self.fuzz_examples = fuzz_examples  # None: no constraint-fuzz items
        self.config: SweepConfig = session.settings.sweep
        self.schemas = self.config.schemas or DEFAULT_SCHEMAS
        self.ignores: Mapping[str, str] = self.config.ignore
        self.ctx: SweepContext | None = None
        self.static: dict[tuple[str, ObjectRef], list[Finding]] = defaultdict(list)
        self.sites: dict[str, tuple[str, int]] = {}
        self.checks: list[Check] = []
        self._auth_patterns: list[Any] | None = None  # what auth.*() looks like in plans, once

    # -- preparation (collection time) ------------------------------------------------

    def prepare(self, conn: Any = None) -> None:
        """Build the database (raises RlscheckError when a migration fails), read the catalog
        in bulk and run the static rules. ``conn``: read this connection's view instead."""
        conn = conn if conn is not None else self.session.worker_connection()
        self.static.clear()
        self._auth_patterns = None
        catalog = Catalog.load(conn, schemas=self.schemas, functions=True)
        self.ctx = SweepContext(catalog, self.schemas, self.config)
        for rule in RULES.values():
            if rule.check is not None:
                for finding in rule.check(self.ctx):
                    self.static[(rule.id, finding.object)].append(finding)
        settings = self.session.settings
        files = load_files(settings.migrations, "migration", settings.rootdir)
        self.sites = creation_sites(files)
        self.checks = self._checks(self.ctx)

    def _checks(self, ctx: SweepContext) -> list[Check]:
        objects: dict[str, list[tuple[ObjectRef, int]]] = {
            "table": [(ref(r), r.oid) for r in ctx.tables()],
            "view": [(ref(r), r.oid) for r in ctx.views()],
            "function": [(ref(f), f.oid) for f in ctx.catalog.functions],
        }
        checks = [
            Check(rule.id, name, oid)
            for rule in sorted(RULES.values(), key=lambda r: r.id)
            for name, oid in objects.get(rule.targets, ())
        ]
        # tenant-leak also covers views and set-returning functions the API can read
        checks += [Check("tenant-leak", name, oid) for name, oid in objects["view"]]
        checks += [
            Check("tenant-leak", ref(f), f.oid)
            for f in ctx.functions()
            if f.returns_set and not f.argument_types
        ]
        if self.fuzz_examples:
            checks += [
                Check(FUZZ, ObjectRef("column", rel.schema, rel.name, column=column.name), rel.oid)
                for rel in ctx.tables()
                for column in rel.columns
                if column.type in ("json", "jsonb") and any(column.name in c.columns for c in rel.checks())
            ]
        return sorted(checks, key=lambda c: (c.object.display, c.rule))

    def unknown_ignores(self) -> dict[str, str]:
        """Ignore entries that cannot match (unknown rule, unknown object, or a static rule
        that found nothing there), each with why."""
        names = {name for c in self.checks for name in c.object.ignore_names()}
        out = {}
        for key in self.ignores:
            rule_id, _, obj = key.partition(":")
            if rule_id not in RULES:
                out[key] = f"{key!r}: no rule {rule_id!r} (rules: {', '.join(sorted(RULES))})"
            elif obj not in names:
                out[key] = f"{key!r}: no object {obj!r} in the schemas {', '.join(self.schemas)}"
            elif RULES[rule_id].check is not None and not any(
                obj in f.object.ignore_names() for (r, _), fs in self.static.items() if r == rule_id for f in fs
            ):
                out[key] = f"{key!r}: {rule_id} finds nothing on {obj}; remove the entry"
        return out

    # -- running one check ------------------------------------------------------------------

    def run_in_transaction(self, check: Check) -> CheckResult:
        """Run one check in a transaction of its own on the worker database, rolled back."""
        session = self.session
        rls = Rls(session.worker_connection(), session.worker_database(), transactional=True, config=self.config)
        rls._begin()
        try:
            return self.run(check, rls)
        finally:
            if not rls._end():
                session.reset_worker_database()

    def run_all(self, rls: Rls) -> list[CheckResult]:
        return [self.run(check, rls) for check in self.checks]

    def run(self, check: Check, rls: Rls) -> CheckResult:
        """Run one check with ``rls`` (inside its transaction; dynamic checks use savepoints)."""
        assert self.ctx is not None
        facts: dict[str, Any] = {}
        if check.kind == "table":
            facts["table"] = self.table_facts(self.ctx.catalog.relation(check.oid))
        if check.rule == FUZZ:
            findings, measured = self._fuzz(check, rls)
            facts.update(measured)
        elif RULES[check.rule].check is not None:
            findings = list(self.static.get((check.rule, check.object), ()))
        else:
            findings, measured = self._dynamic(check, rls)
            facts.update(measured)
        findings = [self._locate(f) for f in findings]
        kept, ignored = [], []
        for finding in findings:
            keys = [f"{finding.rule}:{name}" for name in finding.object.ignore_names()]
            reason = next((self.ignores[key] for key in keys if key in self.ignores), None)
            (ignored.append((finding, reason)) if reason else kept.append(finding))
        return CheckResult(check, tuple(kept), tuple(ignored), facts)

    def _dynamic(self, check: Check, rls: Rls) -> tuple[list[Finding], dict[str, Any]]:
        assert self.ctx is not None
        principals = tenant_leak.principals_from(self.config)
        if check.rule == "auth-per-row":
            rel = self.ctx.catalog.relation(check.oid)
            if not rel.rls_enabled or not rel.policies:
                return [], {"auth.uid": None}
            user = principals[0] if principals else rls.user("00000000-0000-4000-8000-00000000a11c")
            if self._auth_patterns is None:
                self._auth_patterns = auth_per_row.functions(rls)
            findings, measured = auth_per_row.measure(rls, rel, user, self._auth_patterns, self.ctx.catalog)
            return findings, {"auth.uid": measured}
        if check.kind == "table":
            rel = self.ctx.catalog.relation(check.oid)
            if not rel.rls_enabled:
                return [], {"isolation": "RLS off"}
            findings, status = tenant_leak.check_table(rls, self.ctx, rel, principals)
        elif check.kind == "view":
            findings, status = tenant_leak.check_view(rls, self.ctx, self.ctx.catalog.relation(check.oid), principals)
        else:
            fn = next(f for f in self.ctx.catalog.functions if f.oid == check.oid)
            findings, status = tenant_leak.check_function(rls, self.ctx, fn, principals)
        return findings, {"isolation": status}

    def _fuzz(self, check: Check, rls: Rls) -> tuple[list[Finding], dict[str, Any]]:
        from .fuzz import FuzzFailure, admits_null, fuzz_constraint

        assert self.ctx is not None
        rel = self.ctx.catalog.relation(check.oid)
        column = check.object.column
        assert column is not None
        findings: list[Finding] = []
        facts: dict[str, Any] = {}
        try:
            result = fuzz_constraint(rls, rel.qualified, column, max_examples=self.fuzz_examples or 200)
            facts["fuzz"] = {"examples": result.examples, "verdicts": dict(result.verdicts)}
        except FuzzFailure as exc:
            name = exc.constraint.name if exc.constraint else "a CHECK constraint"
            findings.append(
                Finding(
                    "constraint-raises",
                    Severity.ERROR,
                    check.object,
                    exc.headline,
                    "Test the JSON type before converting: CASE WHEN jsonb_typeof(x) = 'number' THEN (x)::numeric "
                    f"> 0 ELSE false END (in {name})",
                    details={"constraint": name},
                )
            )
        null = admits_null(rls, rel.qualified, column)
        if null is not None:
            findings.append(
                Finding(
                    "constraint-admits-null",
                    Severity.WARN,
                    check.object,
                    f"{column} is nullable and SQL NULL passes {null.name} ({null.definition}): a CHECK that "
                    "evaluates to NULL passes, so a row without the value gets in.",
                    f"ALTER TABLE {rel.qualified} ALTER COLUMN {column} SET NOT NULL;  -- or CHECK ({column} IS NOT NULL AND ...)",
                    details={"constraint": null.name},
                )
            )
        return findings, facts

    def _locate(self, finding: Finding) -> Finding:
        site = self.sites.get(finding.object.qualified)  # a function's name, a column's table
        return replace(finding, file=site[0], line=site[1]) if site and finding.file is None else finding

    @staticmethod
    def table_facts(rel: Relation) -> dict[str, Any]:
        return {
            "rls": rel.rls_enabled,
            "forced": rel.rls_forced,
            # the policies the API roles get (a policy TO service_role alone protects nothing)
            "policies": {
                c: sum(1 for p in rel.policies if p.covers(c) and {*API_ROLES, "public"} & set(p.roles))
                for c in COMMANDS
            },
        }

