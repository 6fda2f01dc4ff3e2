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
    "pgmq": {"pgmq"},
    "http": {"http"},
    "plv8": {"plv8"},
    "vault": {"supabase_vault"},
    "pgjwt": {"pgjwt"},
    "vector": set(),
    "storage": set(),
    "realtime": set(),
    "cli_rules": set(),
    "webhooks": {"pg_net"},
}
#: project -> lines its output must have
SAYS = {
    "cli_rules": ['rlscheck: skipped notes.sql (as the Supabase CLI does: the file name must match "<timestamp>_name.sql"'],
}


@pytest.mark.parametrize("name", sorted(p.name for p in PROJECTS.iterdir() if (p / "supabase").is_dir()))
def test_the_project_loads_and_its_tests_pass(name: str, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(PROJECTS / name, pytester.path, dirs_exist_ok=True)
    if name == "vector":
        # pgvector comes from a wheel (no Debian package): the server is chosen by the
        # extensions the migrations create, whatever server the suite runs on
        monkeypatch.delenv("RLSCHECK_PG_BIN", raising=False)
    report = pytester.path / "report.json"
    markdown = pytester.path / "report.md"
    result = pytester.runpytest_subprocess(
        "--rlscheck", "--rlscheck-fail-on=error", f"--rlscheck-report={report}", f"--rlscheck-report={markdown}",
        "-p", "no:cacheprovider", "-rfE",
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
        assert f"`{extension}` — " in markdown.read_text()
    assert data["server"], data
    for line in SAYS.get(name, []):
        assert line in output, output


def test_two_migrations_of_one_version_stop_the_run_naming_both(pytester: pytest.Pytester) -> None:
    shutil.copytree(PROJECTS / "cli_rules", pytester.path, dirs_exist_ok=True)
    migrations = pytester.path / "supabase" / "migrations"
    (migrations / "20240102000000_other.sql").write_text("select 1;\n")
    result = pytester.runpytest_subprocess("--rlscheck", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "two migrations have the version 20240102000000" in err
    assert "20240102000000_done.sql" in err and "20240102000000_other.sql" in err
