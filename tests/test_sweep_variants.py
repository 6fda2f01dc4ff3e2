"""Each rule fires exactly where a broken variant of the example says, and nowhere else."""

from __future__ import annotations

import pytest

from pytest_rlscheck.rules import RULES
from pytest_rlscheck.sweep import Sweep
from sweep_variants import findings_after, variants

VARIANTS = variants()


def test_the_worked_example_has_no_finding(rls, rlscheck_session) -> None:
    assert findings_after(rls, Sweep(rlscheck_session), "") == set()


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_variant_is_caught_exactly(rls, rlscheck_session, variant) -> None:
    found = findings_after(rls, Sweep(rlscheck_session), variant.sql, severities=True)
    pairs = {(rule, obj) for rule, obj, _ in found}
    assert pairs == set(variant.expected), (
        f"missing: {sorted(set(variant.expected) - pairs)}; unexpected: {sorted(pairs - set(variant.expected))}"
    )
    for expected in variant.severities:  # where the file names the severity too
        assert expected in found, f"expected {expected}, found {sorted(f for f in found if f[:2] == expected[:2])}"


def test_every_rule_has_a_variant() -> None:
    covered = {rule for v in VARIANTS for rule, _ in v.expected}
    # migration-failed has its own test: test_sweep.py::test_a_migration_that_fails_is_one_error_item
    # constraint-raises / -admits-null: test_sweep.py::test_fuzz_items_report_constraint_defects
    # access-changed compares with a snapshot: test_access.py (a widened policy, removed relations, --rlscheck-compare)
    own_tests = {"migration-failed", "constraint-raises", "constraint-admits-null", "access-changed"}
    assert covered == set(RULES) - own_tests, f"rules without a variant: {sorted(set(RULES) - covered - own_tests)}"
    assert any(not v.expected for v in VARIANTS), "no trap variant (one that must produce nothing)"
