"""The judged schemas of tests/schemas: realistic Supabase projects of our own, each with the
findings a reader of its SQL expects (the ground truth), and running the sweep on one as a
user runs it (``pytest --rlscheck`` in a project laid out as the Supabase CLI lays it out,
zero-config: the sweep synthesizes principals and rows).

In a schema file:

* ``-- expect: SEVERITY RULE OBJECT  -- why``: a finding the sweep must report, at that
  severity. At error and warn the set is exact; an ``info`` expectation must be among the
  info findings (info is hygiene and not-verified notes: the rest of it is not judged).
* ``-- clean: OBJECT  -- why``: no finding at error or warn on that object.
* ``-- known-miss: SEVERITY RULE OBJECT  -- why``: a finding a reader expects that the sweep
  does not make yet, said so rather than left out: it counts as expected and missed in the
  bench (recall), and the test fails once the sweep finds it (the line becomes an expect).

Every table, view and function the file creates is named by at least one of those lines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = Path(__file__).resolve().parent / "schemas"
JUDGED = ("error", "warn")

_EXPECT = re.compile(r"^--\s*expect:\s*(error|warn|info)\s+(\S+)\s+(.+?)\s+--\s+(.+?)\s*$", re.M)
_CLEAN = re.compile(r"^--\s*clean:\s*(.+?)\s+--\s+(.+?)\s*$", re.M)
_KNOWN = re.compile(r"^--\s*known-miss:\s*(error|warn)\s+(\S+)\s+(.+?)\s+--\s+(.+?)\s*$", re.M)
_MALFORMED = re.compile(r"^--\s*(expect|clean|known-miss):.*$", re.M)
_CREATED = re.compile(
    r"^\s*create\s+(?:or\s+replace\s+)?(?:materialized\s+)?(table|view|function)\s+(?:if\s+not\s+exists\s+)?"
    r"([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)",
    re.M | re.I,
)

Key = tuple[str, str, str]  # (severity, rule, object)


@dataclass(frozen=True)
class Schema:
    name: str
    path: Path
    sql: str
    expected: dict[Key, str]  # -> why
    clean: dict[str, str]  # object -> why
    known_misses: dict[Key, str]  # -> why

    @property
    def judged(self) -> set[Key]:
        """The expected findings at error and warn: the exact set the sweep must report."""
        return {k for k in self.expected if k[0] in JUDGED}

    @property
    def info(self) -> set[Key]:
        return {k for k in self.expected if k[0] == "info"}

    def created(self) -> set[str]:
        """``schema.name`` of every table, view and function the file creates."""
        return {name.lower() for _, name in _CREATED.findall(self.sql)}

    def named(self) -> set[str]:
        """``schema.name`` of every object an expect or clean line names."""
        objects = [obj for _, _, obj in self.expected] + list(self.clean) + [obj for _, _, obj in self.known_misses]
        return {obj.split("(")[0] for obj in objects}


def load(path: Path) -> Schema:
    text = path.read_text()
    expected = {(sev, rule, obj): why for sev, rule, obj, why in _EXPECT.findall(text)}
    clean = {obj: why for obj, why in _CLEAN.findall(text)}
    known = {(sev, rule, obj): why for sev, rule, obj, why in _KNOWN.findall(text)}
    lines = len(_MALFORMED.findall(text))
    if lines != len(_EXPECT.findall(text)) + len(_CLEAN.findall(text)) + len(_KNOWN.findall(text)):
        raise ValueError(f"{path.name}: an expect/clean/known-miss line without its '  -- why'")
    return Schema(path.stem, path, text, expected, clean, known)


def schemas() -> list[Schema]:
    return [load(p) for p in sorted(SCHEMAS.glob("*.sql"))]


def sweep(schema: Schema, workdir: Path | None = None, timeout: float = 600) -> list[dict]:
    """The findings (the JSON report's) of ``pytest --rlscheck`` in a project whose only
    migration is the schema: no seed, no configuration."""
    with tempfile.TemporaryDirectory(prefix=f"judged-{schema.name}-") as tmp:
        project = Path(workdir or tmp)
        migrations = project / "supabase" / "migrations"
        migrations.mkdir(parents=True, exist_ok=True)
        (migrations / "20240101000000_schema.sql").write_text(schema.sql)
        (project / "pyproject.toml").write_text("[tool.rlscheck]\n")
        report = project / "report.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        env.pop("PYTEST_XDIST_WORKER", None)
        env.pop("PYTEST_ADDOPTS", None)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--rlscheck",
             "-m", "rlscheck", f"--rlscheck-report={report}", "--rlscheck-fail-on=error", f"--rootdir={project}"],
            cwd=project, env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )
        if not report.is_file():
            raise RuntimeError(f"{schema.name}: no report (exit {done.returncode})\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        return json.loads(report.read_text())["findings"]


@dataclass(frozen=True)
class Judgement:
    """A schema's findings against what it expects."""

    schema: Schema
    found: frozenset[Key]  # every finding's (severity, rule, object)
    messages: dict[Key, str]

    @property
    def judged_found(self) -> set[Key]:
        return {k for k in self.found if k[0] in JUDGED}

    @property
    def right(self) -> set[Key]:
        return self.judged_found & self.schema.judged

    @property
    def unexpected(self) -> set[Key]:
        """Found at error/warn, not expected so (a false finding, or a wrong severity)."""
        return self.judged_found - self.schema.judged - set(self.schema.known_misses)

    @property
    def missing(self) -> set[Key]:
        """Expected at error/warn and not found so."""
        return self.schema.judged - self.judged_found

    @property
    def known_missed(self) -> set[Key]:
        """The known misses, still missed."""
        return set(self.schema.known_misses) - self.judged_found

    @property
    def stale(self) -> set[Key]:
        """Known misses the sweep now finds: their lines are expectations now."""
        return set(self.schema.known_misses) & self.judged_found

    @property
    def missing_info(self) -> set[Key]:
        return self.schema.info - self.found

    def wrong_severity(self) -> list[tuple[Key, str]]:
        """(found, expected severity) pairs among the differences: same rule and object."""
        expected = {(r, o): s for s, r, o in self.schema.expected}
        return [(k, expected[k[1:]]) for k in sorted(self.unexpected) if k[1:] in expected and expected[k[1:]] != k[0]]

    def explain(self) -> str:
        lines = []
        wrong = {k for k, _ in self.wrong_severity()}
        for k, sev in self.wrong_severity():
            lines.append(f"  wrong severity: {k[1]} {k[2]}: found {k[0]}, expected {sev} "
                         f"({self.schema.expected[(sev, *k[1:])]})")
        for k in sorted(self.unexpected - wrong):
            lines.append(f"  unexpected: {k[0]} {k[1]} {k[2]}: {self.messages.get(k, '')[:300]}")
        expected_moved = {(s, *k[1:]) for k, s in self.wrong_severity()}
        for k in sorted(self.missing - expected_moved):
            lines.append(f"  missing: {k[0]} {k[1]} {k[2]} ({self.schema.expected[k]})")
        for k in sorted(self.stale):
            lines.append(f"  now found (make the known-miss line an expect line): {k[0]} {k[1]} {k[2]}")
        for k in sorted(self.missing_info):
            lines.append(f"  missing info: {k[1]} {k[2]} ({self.schema.expected[k]})")
        return "\n".join(lines)


def judge(schema: Schema, findings: list[dict]) -> Judgement:
    keys = {}
    for f in findings:
        keys.setdefault((f["severity"], f["rule"], f["object"]), f["message"])
    return Judgement(schema, frozenset(keys), keys)
