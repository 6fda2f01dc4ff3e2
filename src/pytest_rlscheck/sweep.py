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

import psycopg

from .catalog import Catalog, Relation
from .client import Rls
from .config import SweepConfig
from .findings import Finding, ObjectRef, Severity
from .locate import Sites
from .migrations import load_files
from .access import RelationAccess
from .rules import API_ROLES, COMMANDS, RULES, RUNNERS, Check, Measurement, SweepContext, access_changed, ref, registered
from .rules import tenant_leak
from .rules.tenant_leak import principals_from
from .session import Database, RlsSession
from .synthesis import Synthesis, plan, synthesize

__all__ = ["Check", "CheckResult", "Sweep"]

DEFAULT_SCHEMAS = ("public",)
#: The platform's tables the project writes policies for (storage's): checked for isolation
#: too, though outside the swept schemas (the other rules are about the project's own tables).
PLATFORM_TABLES_SQL = """
select c.oid::int from pg_class c
where c.oid in (to_regclass('storage.objects'), to_regclass('storage.buckets'))
  and exists (select 1 from pg_policy p where p.polrelid = c.oid)
"""


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


class Sweep:
    def __init__(self, session: RlsSession, *, fuzz_examples: int | None = None) -> None:
        self.session = session
        self.options: dict[str, Any] = {"fuzz_examples": fuzz_examples}  # None: no constraint-fuzz items
        self.config: SweepConfig = session.settings.sweep
        self.schemas = self.config.schemas or DEFAULT_SCHEMAS
        self.ignores: Mapping[str, str] = self.config.ignore
        self.configured = principals_from(self.config)
        self.principals = list(self.configured)
        self.synthesis = Synthesis(tuple(self.configured))
        self._own: tuple[Database, Any] | None = None  # the sweep's database and connection, when it made rows
        self.ctx: SweepContext | None = None
        self.static: dict[tuple[str, ObjectRef], list[Finding]] = defaultdict(list)
        self.sites = Sites()
        self.checks: list[Check] = []
        self.memo: dict[str, Any] = {}  # what dynamic rules keep for the whole sweep

    # -- preparation (collection time) ------------------------------------------------

    def prepare(self, conn: Any = None) -> None:
        """Build the database (raises RlscheckError when a migration fails), read the catalog
        in bulk and run the static rules. ``conn``: read this connection's view instead."""
        given = conn is not None
        conn = conn if conn is not None else self.session.worker_connection()
        self.static.clear()
        self.memo.clear()
        platform = [oid for (oid,) in conn.execute(PLATFORM_TABLES_SQL).fetchall()]
        catalog = Catalog.load(conn, schemas=self.schemas, oids=platform, functions=True)
        self._synthesize(conn, catalog, keep=given)
        self.ctx = SweepContext(catalog, self.schemas, self.config, self.synthesis.keys, self.synthesis.names,
                                self.synthesis.skipped)
        for rule in RULES.values():
            if rule.check is not None:
                for finding in rule.check(self.ctx):
                    self.static[(rule.id, finding.object)].append(finding)
        settings = self.session.settings
        files = load_files(settings.migrations, "migration", settings.rootdir)
        self.sites = Sites.read(files)
        self.checks = self._checks(self.ctx)

    def _synthesize(self, conn: Any, catalog: Catalog, *, keep: bool) -> None:
        """Principals and rows for the measured checks where the project has none
        (:mod:`.synthesis`). On a connection given (a test's transaction) they are made in
        it. Otherwise a read-only plan tells whether anything is needed (the shared database
        is left as the seed made it, sequences too); if so they are made in the sweep's own
        clone of the template, committed, and the measured checks run there, with the
        principals that clone got (a sign-up trigger's random ids are the clone's)."""
        self.close()
        names = list(self.config.principals)
        if keep:
            self.synthesis = synthesize(conn, catalog, self.config, self.configured, names)
        else:
            with conn.transaction():
                self.synthesis, needed = plan(conn, catalog, self.config, self.configured, names)
            if needed:
                self._own_connection(catalog)
        self.principals = list(self.synthesis.principals)

    def _own_connection(self, catalog: Catalog | None = None) -> Any:
        """The sweep's database with the synthesized rows (made again if its connection broke)."""
        if self._own is None or self._own[1].closed or self._own[1].broken:
            catalog = catalog if catalog is not None else self.ctx.catalog if self.ctx is not None else None
            assert catalog is not None
            self.close()
            database = self.session.sweep_database()
            conn = database.connect(autocommit=True)
            try:
                self.synthesis = synthesize(conn, catalog, self.config, self.configured, list(self.config.principals))
                conn.execute("ANALYZE")
            except BaseException:
                conn.close()
                raise
            self.principals = list(self.synthesis.principals)
            self._own = (database, conn)
        return self._own[1]

    def _checks(self, ctx: SweepContext) -> list[Check]:
        """One check per registered rule and object it targets (a runner only with its option)."""
        candidates: dict[str, list[tuple[ObjectRef, int, Any]]] = {
            "table": [(ref(r), r.oid, r) for r in ctx.tables()],
            "platform-table": [(ref(r), r.oid, r) for r in ctx.platform_tables()],
            "view": [(ref(r), r.oid, r) for r in ctx.views()],
            "function": [(ref(f), f.oid, f) for f in ctx.catalog.functions],
            "column": [
                (ObjectRef("column", r.schema, r.name, column=c.name), r.oid, (r, c)) for r in ctx.tables() for c in r.columns
            ],
        }
        baseline = self.options.get(access_changed.OPTION)
        if baseline is not None:  # the snapshot's relations the schema no longer has: each says so
            present = {name.display for kind in ("table", "platform-table", "view", "function")
                       for name, _, _ in candidates[kind]}
            candidates[access_changed.REMOVED] = [
                (ObjectRef.outside(access_changed.REMOVED, name), 0, None)
                for name in sorted(baseline.relations) if name not in present
            ]
        checks = []
        for rule in sorted([*RULES.values(), *RUNNERS.values()], key=lambda r: r.id):
            if rule.option is not None and not self.options.get(rule.option):
                continue
            if rule.check is None and rule.measure is None:
                continue  # reported elsewhere (migration-failed, the fuzz's findings)
            for kind in (rule.targets, *rule.also):
                for name, oid, obj in candidates.get(kind, ()):
                    if kind != rule.targets and kind == "function" and obj.schema not in ctx.schemas:
                        continue  # read through the API: the exposed schemas only
                    if rule.applies is None or rule.applies(ctx, kind, obj):
                        checks.append(Check(rule.id, name, oid))
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
            elif obj.startswith("#"):
                static = RULES[rule_id].check is not None
                if static and not any(f.fingerprint == obj[1:] for (r, _), fs in self.static.items() if r == rule_id for f in fs):
                    out[key] = f"{key!r}: {rule_id} has no finding with fingerprint {obj[1:]}; remove the entry"
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
        if self.synthesis.made_anything:
            conn = self._own_connection()
            assert self._own is not None
            rls = Rls(conn, self._own[0], transactional=True, config=self.config)
        else:
            rls = Rls(session.worker_connection(), session.worker_database(), transactional=True, config=self.config)
        transaction = rls.test_transaction().begin()
        try:
            return self.run(check, rls)
        finally:
            if not transaction.end():
                if self.synthesis.made_anything:
                    self.close()  # made again on next use
                else:
                    session.reset_worker_database()

    def close(self) -> None:
        """Close the sweep's own connection (its database is dropped with the session's)."""
        own, self._own = self._own, None
        if own is not None:
            own[1].close()

    def access_rows(self) -> list[RelationAccess]:
        """The access matrix of this sweep's database: every relation's isolation check run
        (each in its transaction, rolled back), its row read off the outcomes. For
        ``--rlscheck-compare``: the sweep of the other revision's template."""
        rows = []
        for check in self.checks:
            if check.rule == tenant_leak.RULE:
                access = self.run_in_transaction(check).facts.get("access")
                if access:
                    rows.append(RelationAccess.from_dict(access))
        return rows

    def run_all(self, rls: Rls) -> list[CheckResult]:
        return [self.run(check, rls) for check in self.checks]

    def run(self, check: Check, rls: Rls) -> CheckResult:
        """Run one check with ``rls`` (inside its transaction; dynamic checks use savepoints)."""
        assert self.ctx is not None
        facts: dict[str, Any] = {}
        if check.kind == "table":
            facts["table"] = self.table_facts(self.ctx.catalog.relation(check.oid))
        rule = registered(check.rule)
        if rule.measure is not None:
            measured = Measurement(rls, self.ctx, check, tuple(self.principals), self.memo, self.options)
            findings, found = rule.measure(measured)
            facts.update(found)
            if self.synthesis.worth_saying:
                facts["synthesis"] = self.synthesis.to_dict()
        else:
            findings = list(self.static.get((check.rule, check.object), ()))
        findings = [self._locate(f) for f in findings]
        kept, ignored = [], []
        for finding in findings:
            keys = [f"{finding.rule}:{name}" for name in finding.object.ignore_names()]
            keys.append(f"{finding.rule}:#{finding.fingerprint}")
            reason = next((self.ignores[key] for key in keys if key in self.ignores), None)
            (ignored.append((finding, reason)) if reason else kept.append(finding))
        return CheckResult(check, tuple(kept), tuple(ignored), facts)

    def _locate(self, finding: Finding) -> Finding:
        """Where the finding's object was last (re)created or altered (:mod:`.locate`): a
        function's name, a column's table; the policy's own statement when it names one."""
        if finding.file is not None:
            return finding
        policy, policies = finding.details.get("policy"), finding.details.get("policies")
        if not policy and not policies:  # the policies its fix changes: where the line to change is
            policies = finding.details.get("fixed_policies")
        if isinstance(policy, str):
            site = self.sites.of(finding.object.qualified, policy)
        elif isinstance(policies, (list, tuple)) and policies:
            site = self.sites.latest(finding.object.qualified, [str(p) for p in policies])
        else:
            site = self.sites.of(finding.object.qualified)
        return replace(finding, file=site[0], line=site[1]) if site else finding

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

