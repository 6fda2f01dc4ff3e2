"""pytest glue for the sweep: generated items, ``rlscheck::<object>::<rule>``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from .catalog import MANAGED_SCHEMAS, Relation
from .errors import RlscheckError
from .findings import Finding, Severity
from .report import SweepReport
from .session import RlsSession
from .sweep import Check, Sweep

__all__ = ["RESULT_KEY", "SweepPlugin", "collect_sweep"]

RESULT_KEY = "rlscheck"
MARKER = "rlscheck"


class RlscheckFailure(Exception):
    def __init__(self, findings: list[Finding]) -> None:
        super().__init__(findings)
        self.findings = findings


class RlscheckCollector(pytest.Collector):
    """A node without a file: ``rlscheck`` and ``rlscheck::<object>``."""

    def collect(self) -> list[pytest.Item | pytest.Collector]:  # pragma: no cover - filled in by the plugin
        return []


class RlscheckItem(pytest.Item):
    def __init__(self, *, check: Check | None, sweep: Sweep | None, fail_on: Severity, report: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.sweep = sweep
        self.fail_on = fail_on
        self.fixed_report = report  # a setup problem (a migration that failed) to report as is
        self.add_marker(MARKER)

    def runtest(self) -> None:
        if self.check is None or self.sweep is None:
            raise RlscheckFailure([])
        try:
            result = self.sweep.run_in_transaction(self.check)
        except psycopg.OperationalError as exc:  # the server is gone: say so, not a traceback
            self.fixed_report = (
                f"rlscheck: lost the database server: {str(exc).strip()}\n{self.sweep.session.lost_report()}"
            )
            raise RlscheckFailure([]) from None
        self.user_properties.append((RESULT_KEY, result.to_dict()))
        failing = result.failing(self.fail_on)
        if failing:
            raise RlscheckFailure(failing)
        if result.ignored and not result.findings:
            reasons = "; ".join(reason for _, reason in result.ignored)
            raise pytest.skip.Exception(
                f"{self.check.rule}:{self.check.object} ignored in [tool.rlscheck.ignore]: {reasons}",
                _use_item_location=True,
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if self.fixed_report:
            return self.fixed_report
        if isinstance(excinfo.value, RlscheckFailure):
            blocks = []
            for f in excinfo.value.findings:
                where = f" ({f.file}:{f.line})" if f.file else ""
                block = f"[{f.severity}] {f.rule} on {f.object}{where}\n{f.message}"
                if f.fix:
                    block += "\nFix:\n" + "\n".join(f"    {line}" for line in f.fix.splitlines())
                blocks.append(block)
            return "\n\n".join(blocks)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        config_file = self.sweep.session.settings.config_file if self.sweep else None
        return (config_file or self.path), 0, self.nodeid


def collect_sweep(session: pytest.Session, sweep: Sweep, fail_on: Severity) -> tuple[list[pytest.Item], list[str]]:
    """Items of the sweep (or one ``migration-failed`` or ``nothing-to-check`` item), and
    configuration notes."""
    root = RlscheckCollector.from_parent(session, name="rlscheck", nodeid="rlscheck")
    try:
        sweep.prepare()
    except RlscheckError as exc:
        group = RlscheckCollector.from_parent(root, name="migrations")
        item = RlscheckItem.from_parent(
            group, name="migration-failed", check=None, sweep=None, fail_on=fail_on, report=exc.render()
        )
        item.user_properties.append((RESULT_KEY, _migration_failure(exc)))
        return [item], []
    if not sweep.checks:
        group = RlscheckCollector.from_parent(root, name="schema")
        report = nothing_to_check(sweep)
        item = RlscheckItem.from_parent(group, name="nothing-to-check", check=None, sweep=None, fail_on=fail_on,
                                        report=report)
        item.user_properties.append((RESULT_KEY, _setup_result("nothing-to-check", "schema", report)))
        return [item], []
    mismatches = tenant_mismatches(sweep)
    unreliable = {obj for m in mismatches for obj in m.objects}
    groups: dict[str, RlscheckCollector] = {}
    items: list[pytest.Item] = []
    for check in sweep.checks:
        if check.rule == "tenant-leak" and check.object in unreliable:
            continue  # compared with a tenant no row can have: reported once, below
        group = groups.get(check.object)
        if group is None:
            group = groups[check.object] = RlscheckCollector.from_parent(root, name=check.object)
        items.append(RlscheckItem.from_parent(group, name=check.rule, check=check, sweep=sweep, fail_on=fail_on))
    config_reports: dict[str, str] = {}
    notes = sweep.unknown_ignores()
    if notes:
        config_reports["ignore"] = "[tool.rlscheck.ignore] entries that match nothing:\n" + "\n".join(f"  - {n}" for n in notes)
    if mismatches:
        config_reports["principals"] = mismatch_report(mismatches)
    if config_reports:
        group = RlscheckCollector.from_parent(root, name="config")
        items += [
            RlscheckItem.from_parent(group, name=name, check=None, sweep=None, fail_on=fail_on, report=report)
            for name, report in config_reports.items()
        ]
    return items, notes


# -- nothing to check ---------------------------------------------------------------------

OTHER_SCHEMAS_SQL = """
select n.nspname, count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'm') and n.nspname not like 'pg\\_%%' and n.nspname <> all(%(skip)s::text[])
group by 1 order by 1
"""

POINT_AT_MIGRATIONS = (
    "Point the plugin at your migrations: --rlscheck-migrations=PATH (a directory, a file or a glob; "
    "repeatable), or in pyproject.toml:\n"
    "    [tool.rlscheck]\n"
    '    migrations = ["path/to/migrations"]'
)


def nothing_to_check(sweep: Sweep) -> str:
    """Why the sweep has no item: the migrations it applied (or where it looked for them),
    the schemas it swept, and how to point it at the right ones."""
    settings = sweep.session.settings
    schemas = ", ".join(sweep.schemas)
    chosen = "from [tool.rlscheck] schemas" if settings.table.get("schemas") else "the default"
    lines = [f"Nothing to check: the sweep found no table, view or function in the schema(s) {schemas} ({chosen})."]
    if settings.migrations:
        lines.append(f"Migrations applied: {len(settings.migrations)} file(s), from {settings.migration_origin}:")
        lines += [f"  {_shown(path, settings.rootdir)}" for path in settings.migrations]
        lines.append(f"They create no table, view or function in {schemas}.")
    elif settings.empty_migration_dirs:
        empty = ", ".join(str(d) for d in settings.empty_migration_dirs)
        lines.append(f"Migrations applied: none. {empty} holds no .sql file (from {settings.migration_origin}).")
    else:
        lines.append(
            f"Migrations applied: none. Looked for {settings.migration_origin}; neither --rlscheck-migrations "
            "nor [tool.rlscheck] migrations is set."
        )
    elsewhere = _other_schemas(sweep)
    if elsewhere:
        listed = ", ".join(f"{name} ({n})" for name, n in elsewhere)
        suggestion = ", ".join(f'"{name}"' for name in (*sweep.schemas, *(name for name, _ in elsewhere)))
        lines.append(
            f"Tables or views exist in other schemas: {listed}. If the API exposes them, sweep them: "
            f"[tool.rlscheck] schemas = [{suggestion}]."
        )
    lines.append(POINT_AT_MIGRATIONS)
    return "\n".join(lines)


def _other_schemas(sweep: Sweep) -> list[tuple[str, int]]:
    """Schemas outside the swept ones (and PostgreSQL's and Supabase's own) that hold relations."""
    skip = [*MANAGED_SCHEMAS, *sweep.schemas]
    return [(name, n) for name, n in sweep.session.worker_connection().execute(OTHER_SCHEMAS_SQL, {"skip": skip})]


def _shown(path: Path, rootdir: Path) -> str:
    try:
        return str(path.relative_to(rootdir))
    except ValueError:
        return str(path)


# -- principals whose tenant cannot be in the tenant column ----------------------------------


@dataclass(frozen=True)
class TenantMismatch:
    """A principal's tenant that is no value of the tenant column it is compared with."""

    principal: str  # its name in [tool.rlscheck.principals]
    tenant: Any
    column: str  # schema.relation.column
    type: str
    objects: tuple[str, ...]  # the tenant-leak checks it would judge wrongly


def tenant_mismatches(sweep: Sweep) -> list[TenantMismatch]:
    """Principals whose ``tenant`` the tenant columns cannot hold (``5`` for a uuid column):
    every row would look like another tenant's, a leak that is not one."""
    tenants = {
        name: spec["tenant"]
        for name, spec in (sweep.config.get("principals") or {}).items()
        if spec.get("tenant") is not None
    }
    columns = _tenant_columns(sweep) if tenants else {}
    fits: dict[tuple[str, str], bool] = {}
    found = []
    for name, tenant in tenants.items():
        for (column, type_), objects in columns.items():
            key = (type_, str(tenant))
            if key not in fits:
                fits[key] = _fits(sweep, str(tenant), type_)
            if not fits[key]:
                found.append(TenantMismatch(name, tenant, column, type_, tuple(objects)))
    return found


def _tenant_columns(sweep: Sweep) -> dict[tuple[str, str], list[str]]:
    """(schema.relation.column, type) of each tenant column the tenant-leak checks compare
    principals' tenants with, and the objects of those checks."""
    assert sweep.ctx is not None
    columns: dict[tuple[str, str], list[str]] = {}
    for check in sweep.checks:
        rel = _compared_relation(sweep, check) if check.rule == "tenant-leak" else None
        key = sweep.ctx.tenant_key(rel) if rel is not None else None
        if rel is None or key is None or key.per_user or not key.column:
            continue  # no tenant column (per-user tables compare subs, tenant_sql an expression)
        column = rel.column(key.column)
        if column is not None:
            columns.setdefault((f"{rel.qualified}.{column.name}", column.type), []).append(check.object)
    return columns


def _compared_relation(sweep: Sweep, check: Check) -> Relation | None:
    """The relation whose rows a tenant-leak check compares: the table or view, or the one a
    set-returning function returns (as the check itself finds it)."""
    assert sweep.ctx is not None
    catalog = sweep.ctx.catalog
    if check.kind in ("table", "view"):
        return catalog.relation(check.oid)
    fn = next((f for f in catalog.functions if f.oid == check.oid), None)
    returned = fn.result.removeprefix("SETOF ").strip() if fn is not None else ""
    return next((r for r in catalog.relations if returned in (r.name, r.qualified)), None)


def _fits(sweep: Sweep, tenant: str, type_: str) -> bool:
    """Whether PostgreSQL reads ``tenant`` as a value of ``type_``."""
    conn = sweep.session.worker_connection()
    try:
        conn.execute(sql.SQL("select %s::text::{}").format(sql.SQL(type_)), [tenant])
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError):
        return False
    except psycopg.OperationalError:
        raise
    except psycopg.Error:  # a type this cast cannot name: no judgement rather than a wrong one
        return True
    return True


def mismatch_report(mismatches: list[TenantMismatch]) -> str:
    """One line per principal and type, the objects left unchecked, and the fix."""
    columns: dict[tuple[str, str, str], list[str]] = {}
    for m in mismatches:
        columns.setdefault((m.principal, _toml(m.tenant), m.type), []).append(m.column)
    lines = ["[tool.rlscheck.principals]: tenants the tenant columns cannot hold:"]
    for (principal, tenant, type_), names in columns.items():
        more = f" and {len(names) - 1} more tenant column(s)" if len(names) > 1 else ""
        lines.append(f"  - {principal}: tenant = {tenant} is not a valid {type_} (the type of {names[0]}{more})")
    objects = sorted({obj for m in mismatches for obj in m.objects})
    lines.append(
        f"tenant-leak was not checked on {', '.join(objects)}: the isolation checks compare each row's tenant with "
        "the principal's, and with a tenant of another type every row would look like another tenant's (a leak "
        "that is not one) or none would be found."
    )
    examples = "; ".join(f"{type_}: e.g. tenant = {_example(type_)}" for type_ in dict.fromkeys(m.type for m in mismatches))
    lines.append(f"Fix: set each principal's tenant to the id of their tenant as those columns store it ({examples}).")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _example(type_: str) -> str:
    if type_ in ("smallint", "integer", "bigint", "numeric"):
        return "42"
    if type_ == "uuid":
        return '"aaaaaaaa-0000-0000-0000-000000000001"'
    return '"…"'


def _setup_result(rule: str, obj: str, message: str) -> dict[str, Any]:
    """A problem of the sweep's setup as a result, for the reports."""
    finding = Finding(rule, Severity.ERROR, obj, message)
    return {"rule": rule, "object": obj, "kind": "setup", "findings": [finding.to_dict()], "ignored": [], "facts": {}}


def _migration_failure(exc: RlscheckError) -> dict[str, Any]:
    """The failure as a finding, for the reports (with file and line when known)."""
    location = getattr(exc, "location", "") or ""
    file, _, rest = location.partition(":")
    line = int(rest.split(":")[0]) if rest.split(":")[0].isdigit() else None
    finding = Finding("migration-failed", Severity.ERROR, file or "migrations", exc.render(), "", file or None, line)
    return {"rule": "migration-failed", "object": finding.object, "kind": "migration",
            "findings": [finding.to_dict()], "ignored": [], "facts": {}}


class SweepPlugin:
    """Registered with --rlscheck: adds the items, gathers their results, reports them."""

    def __init__(self, config: pytest.Config, session: RlsSession, fail_on: Severity, fuzz_examples: int | None) -> None:
        self.config = config
        self.session = session
        self.fuzz_examples = fuzz_examples
        self.report = SweepReport(fail_on)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        """Before -m/-k/--deselect choose among them."""
        sweep = Sweep(self.session, fuzz_examples=self.fuzz_examples)
        generated, notes = collect_sweep(session, sweep, self.report.fail_on)
        items.extend(generated)
        self.report.notes += [f"rlscheck config: {note}" for note in notes]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":  # setup/teardown reports carry the same properties
            return
        for key, value in report.user_properties:
            if key == RESULT_KEY:
                self.report.add(value)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput") or not self.report:
            return
        terminalreporter.section("rlscheck")
        for line in self.report.terminal_lines():
            terminalreporter.line(line)
        unused = self.report.unused_ignores(self.session.settings.table.get("ignore") or {})
        known_unused = {n.split("'")[1] for n in self.report.notes if "'" in n}
        for key in unused:
            if key not in known_unused:
                terminalreporter.line(f"rlscheck config: ignore {key!r} matched no finding; remove it")
        for path in self.config.getoption("rlscheck_report"):
            self.report.write(Path(path))
            terminalreporter.line(f"rlscheck report written to {path}")
