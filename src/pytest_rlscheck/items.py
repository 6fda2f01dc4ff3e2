"""pytest glue for the sweep: generated items, ``rlscheck::<object>::<rule>``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from .access import Snapshot
from .baseline import COMPARE_KEY, SnapshotPlan, compare_baseline, write_snapshot
from .errors import Location, RlscheckError
from .preflight import mismatch_report, nothing_to_check, tenant_mismatches
from .findings import Finding, ObjectRef, Severity
from .report import SweepReport
from .rules import MIGRATION_FAILED, access_changed, tenant_leak
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


def collect_sweep(
    session: pytest.Session, sweep: Sweep, fail_on: Severity, problems: dict[str, str] | None = None
) -> tuple[list[pytest.Item], dict[str, str]]:
    """Items of the sweep (or one ``migration-failed`` or ``nothing-to-check`` item), and
    the ignore entries that match nothing, each with a note that says why."""
    root = RlscheckCollector.from_parent(session, name="rlscheck", nodeid="rlscheck")
    try:
        sweep.prepare()
    except RlscheckError as exc:
        group = RlscheckCollector.from_parent(root, name="migrations")
        item = RlscheckItem.from_parent(
            group, name=MIGRATION_FAILED, check=None, sweep=None, fail_on=fail_on, report=exc.render()
        )
        item.user_properties.append((RESULT_KEY, _migration_failure(exc)))
        return [item], {}
    if not sweep.checks:
        group = RlscheckCollector.from_parent(root, name="schema")
        report = nothing_to_check(sweep)
        item = RlscheckItem.from_parent(group, name="nothing-to-check", check=None, sweep=None, fail_on=fail_on,
                                        report=report)
        item.user_properties.append((RESULT_KEY, _setup_result("nothing-to-check", "schema", report)))
        return [item], {}
    mismatches = tenant_mismatches(sweep)
    unreliable = {obj for m in mismatches for obj in m.objects}
    groups: dict[str, RlscheckCollector] = {}
    items: list[pytest.Item] = []
    for check in sweep.checks:
        if check.rule == tenant_leak.RULE and check.object in unreliable:
            continue  # compared with a tenant no row can have: reported once, below
        group = groups.get(check.object.display)
        if group is None:
            group = groups[check.object.display] = RlscheckCollector.from_parent(root, name=check.object.display)
        items.append(RlscheckItem.from_parent(group, name=check.rule, check=check, sweep=sweep, fail_on=fail_on))
    config_reports: dict[str, str] = dict(problems or {})
    notes = sweep.unknown_ignores()
    if notes:
        config_reports["ignore"] = "[tool.rlscheck.ignore] entries that match nothing:\n" + "\n".join(
            f"  - {n}" for n in notes.values()
        )
    if mismatches:
        config_reports["principals"] = mismatch_report(mismatches)
    if config_reports:
        group = RlscheckCollector.from_parent(root, name="config")
        items += [
            RlscheckItem.from_parent(group, name=name, check=None, sweep=None, fail_on=fail_on, report=report)
            for name, report in config_reports.items()
        ]
    return items, notes


def _setup_result(rule: str, obj: str, message: str) -> dict[str, Any]:
    """A problem of the sweep's setup as a result, for the reports."""
    finding = Finding(rule, Severity.ERROR, ObjectRef.outside("setup", obj), message)
    return {"rule": rule, "object": obj, "kind": "setup", "findings": [finding.to_dict()], "ignored": [], "facts": {}}


def _migration_failure(exc: RlscheckError) -> dict[str, Any]:
    """The failure as a finding, for the reports (with file, line and column when known)."""
    location = getattr(exc, "location", None)
    where = location if isinstance(location, Location) else None
    finding = Finding(
        MIGRATION_FAILED,
        Severity.ERROR,
        ObjectRef.outside("migration", where.file if where else "migrations"),
        exc.render(),
        file=where.file if where else None,
        line=where.line if where else None,
        column=where.column if where else None,
    )
    return {"rule": MIGRATION_FAILED, "object": finding.object.display, "kind": "migration",
            "findings": [finding.to_dict()], "ignored": [], "facts": {}}


class SweepPlugin:
    """Registered with --rlscheck: adds the items, gathers their results, reports them."""

    def __init__(self, config: pytest.Config, session: RlsSession, fail_on: Severity, fuzz_examples: int | None,
                 plan: SnapshotPlan | None = None) -> None:
        self.config = config
        self.session = session
        self.fuzz_examples = fuzz_examples
        self.plan = plan or SnapshotPlan(None)
        self.report = SweepReport(fail_on)
        self.unknown_ignores: set[str] = set()  # reported at collection already
        self.sweep: Sweep | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        """Before -m/-k/--deselect choose among them."""
        sweep = self.sweep = Sweep(self.session, fuzz_examples=self.fuzz_examples)
        problems: dict[str, str] = {}
        baseline = self._baseline(problems)
        if baseline is not None:
            sweep.options[access_changed.OPTION] = baseline
            sweep.options[access_changed.UPDATE_OPTION] = self.plan.update
        generated, notes = collect_sweep(session, sweep, self.report.fail_on, problems)
        items.extend(generated)
        self.report.notes += [f"rlscheck config: {note}" for note in notes.values()]
        self.unknown_ignores |= set(notes)

    def _baseline(self, problems: dict[str, str]) -> Snapshot | None:
        """What access-changed compares with: the revision's matrix (measured by the xdist
        controller, or here), or the snapshot file; a failure to measure the revision is a
        failing config item, not a traceback."""
        if not self.plan.compare:
            return self.plan.file_baseline(self.session.settings.rootdir)
        workerinput = getattr(self.config, "workerinput", None)
        shared = workerinput.get(COMPARE_KEY) if workerinput is not None else None
        if shared is None:
            shared = compare_baseline(self.session, self.plan.compare)
        if shared.get("error"):
            problems["compare"] = str(shared["error"])
            return None
        return Snapshot.from_json(shared["snapshot"], f"git {self.plan.compare}")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        """The sweep's own connection goes before the session drops its databases."""
        if self.sweep is not None:
            self.sweep.close()

    def _snapshot_lines(self) -> list[str]:
        """Write the snapshot when the run accepts what it measured; say where it is when it
        was asked for and is not there yet."""
        plan, rootdir = self.plan, self.session.settings.rootdir
        if plan.compare or plan.path is None:
            return []
        shown = plan.shown_path(rootdir)
        if plan.update:
            rows = self.report.access()
            if not rows:
                return [f"rlscheck: access snapshot {shown} not written: no relation's access was measured"]
            count, changed = write_snapshot(plan.path, rows, self.report.removed_relations())
            return [f"rlscheck: access snapshot written to {shown} ({count} relations, {changed} changed)"]
        if plan.configured and not plan.path.is_file():
            return [f"rlscheck: no access snapshot at {shown} yet: --rlscheck-snapshot-update writes it"]
        return []

    def pytest_report_collectionfinish(self, config: pytest.Config, items: list[pytest.Item]) -> str | None:
        """Under the "collected … / N deselected" line: what of the sweep will run, so that
        ``-m rlscheck`` deselecting the project's own tests does not read as nothing ran."""
        checks = sum(1 for item in items if isinstance(item, RlscheckItem))
        others = len(items) - checks
        own = f", and {others} of the project's own tests" if others else " (the project's own tests are not selected)"
        return f"rlscheck: {checks} checks of the schema sweep will run{own}"

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
        unused = self.report.unused_ignores(self.session.settings.sweep.ignore)
        for key in unused:
            if key not in self.unknown_ignores:
                terminalreporter.line(f"rlscheck config: ignore {key!r} matched no finding; remove it")
        self.report.environment = self.session.environment()
        for line in self._snapshot_lines():
            terminalreporter.line(line)
        for path in self.config.getoption("rlscheck_report"):
            self.report.write(Path(path))
            terminalreporter.line(f"rlscheck report written to {path}")
