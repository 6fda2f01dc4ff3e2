"""Every fix the sweep prints for the broken variants runs as shown and removes its finding.

For each variant of sql/variants and each finding with a fix: the variant is applied in the
test's transaction, the fix is executed exactly as printed (as the project owner, the way a
migration runs it) in a savepoint, the finding's own check runs again on its object, and the
finding (same fingerprint) must be gone; the savepoint is rolled back."""

from __future__ import annotations

import re

import pytest

from pytest_rlscheck.findings import Severity
from pytest_rlscheck.sweep import Sweep
from sweep_variants import findings_after, variants

VARIANTS = [v for v in variants() if v.expected]  # the traps produce nothing to fix
PLACEHOLDER = re.compile(r"<[a-z][a-z _-]*>|\.\.\.")


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_every_fix_runs_and_removes_its_finding(rls, rlscheck_session, variant) -> None:
    sweep = Sweep(rlscheck_session)
    findings_after(rls, sweep, variant.sql)
    found = [(result.check, f) for result in sweep.run_all(rls) for f in result.findings]
    unfixed = [f"{f.rule} on {f.object}" for _, f in found if not f.fix and f.severity is not Severity.INFO]
    assert not unfixed, f"an error or warning without a fix: {unfixed}"  # only "not verified" notes go without
    fixed = [(check, f) for check, f in found if f.fix]
    assert fixed, "the variant's findings have no fix"
    for check, finding in fixed:
        assert not PLACEHOLDER.search(finding.fix), f"{finding.rule} on {finding.object}: a placeholder in\n{finding.fix}"
        with rls.connection.transaction(force_rollback=True):
            rls.execute(finding.fix)  # raises if PostgreSQL rejects it
            sweep.prepare(rls.connection)
            again = [c for c in sweep.checks if c.rule == check.rule and c.object == check.object]
            # gone; at most a lesser note (a leak fixed may leave "not verified" on the same object)
            left = [f for c in again for f in sweep.run(c, rls).findings
                    if f.fingerprint == finding.fingerprint and (f.severity is not Severity.INFO or finding.severity is Severity.INFO)]
            assert not left, f"{finding.rule} on {finding.object} is still found after its fix:\n{finding.fix}\n{left[0].message}"
