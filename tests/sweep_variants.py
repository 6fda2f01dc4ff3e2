"""The broken variants of sql/variants: their SQL and the findings each must produce."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pytest_rlscheck.client import Rls
from pytest_rlscheck.sqlsplit import split
from pytest_rlscheck.sweep import Sweep

VARIANTS = Path(__file__).resolve().parents[1] / "sql" / "variants"
_EXPECT = re.compile(r"^--\s*expect:\s*(\S+)\s+(.+?)\s*$", re.M)
_SEVERITY = re.compile(r"^--\s*severity:\s*(\S+)\s+(\S+)\s+(.+?)\s*$", re.M)


@dataclass(frozen=True)
class Variant:
    name: str
    sql: str
    expected: frozenset[tuple[str, str]]  # (rule, object)
    severities: tuple[tuple[str, str, str], ...] = ()  # (rule, object, severity) where the file says


def variants() -> list[Variant]:
    return [
        Variant(
            path.stem,
            path.read_text(),
            frozenset(_EXPECT.findall(path.read_text())),
            tuple((rule, obj, severity) for severity, rule, obj in _SEVERITY.findall(path.read_text())),
        )
        for path in sorted(VARIANTS.glob("*.sql"))
    ]


def findings_after(rls: Rls, sweep: Sweep, sql: str, *, severities: bool = False) -> set[tuple[str, ...]]:
    """Apply ``sql`` in the test's transaction and sweep: every (rule, object) found, or
    (rule, object, severity) with ``severities``."""
    for statement in split(sql):
        rls.execute(statement.text)
    sweep.prepare(rls.connection)
    return {
        (f.rule, f.object.display, str(f.severity)) if severities else (f.rule, f.object.display)
        for result in sweep.run_all(rls)
        for f in result.findings
    }
