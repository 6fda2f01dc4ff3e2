"""Small projects of our own, each mimicking what real Supabase projects do with a platform
extension or a platform schema, run as a user runs them: ``pytest --rlscheck`` in the
project, with its own tests. Each must load, pass, and name the stand-ins it ran on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

PROJECTS = Path(__file__).parent / "projects"
#: project -> the stand-ins its header and JSON report must name
STAND_INS = {
    "pg_net": {"pg_net"},
    "pg_cron": {"pg_cron"},
    "http": {"http"},
    "plv8": {"plv8"},
    "vault": {"supabase_vault"},
    "pgjwt": {"pgjwt"},
    "vector": set(),
    "storage": set(),
    "realtime": set(),
}


@pytest.mark.parametrize("name", sorted(p.name for p in PROJECTS.iterdir() if (p / "supabase").is_dir()))
def test_the_project_loads_and_its_tests_pass(name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(PROJECTS / name, pytester.path, dirs_exist_ok=True)
    if name == "vector":
        # pgvector comes from a wheel (no Debian package): the server is chosen by the
        # extensions the migrations create, whatever server the suite runs on
        monkeypatch.delenv("RLSCHECK_PG_BIN", raising=False)
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "--rlscheck", "--rlscheck-fail-on=error", f"--rlscheck-report={report}", "-p", "no:cacheprovider", "-rfE"
    )
    output = result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, output
    own = len(list(pytester.path.glob("test_*.py")))
    assert own and "of the project's own tests" in output, output
    expected = STAND_INS.get(name, set())
    data = json.loads(report.read_text())
    assert {s["extension"] for s in data["stand_ins"]} >= expected, data["stand_ins"]
    for extension in expected:
        assert f"rlscheck: simulated: {extension} — " in output, output
    assert data["server"], data
