"""Judged on realistic schemas: for each project of tests/schemas, run zero-config as a user
runs it (``pytest --rlscheck``), the findings at error and warn are exactly the ones a reader
of its SQL expects, with their severity, and the expected info findings are among the rest.

The expectations are the ground truth, written from the SQL against the severity model
(README, "Severities"), not from what the sweep reports: a difference is the sweep's to fix.
"""

from __future__ import annotations

import pytest

from judged_schemas import judge, schemas, sweep

SCHEMAS = schemas()


def test_there_are_judged_schemas_of_each_theme() -> None:
    names = {s.name for s in SCHEMAS}
    assert {"teams", "reference", "profiles", "invitations", "admin", "definer_rpcs", "support_desk"} <= names, names
    for schema in SCHEMAS:
        assert schema.judged or schema.clean, schema.name


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.name)
def test_every_object_is_judged(schema) -> None:
    unnamed = schema.created() - schema.named()
    assert not unnamed, f"{schema.name}: objects with no expect/clean line: {sorted(unnamed)}"
    contradicted = {o for s, _, o in schema.judged if o in schema.clean}
    assert not contradicted, f"{schema.name}: both clean and expected at error/warn: {sorted(contradicted)}"


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.name)
def test_the_sweep_finds_what_a_reader_expects(schema, tmp_path) -> None:
    judgement = judge(schema, sweep(schema, tmp_path))
    clean_hit = {k for k in judgement.judged_found if k[2] in schema.clean}
    if judgement.unexpected or judgement.missing or judgement.missing_info or judgement.stale:
        pytest.fail(
            f"{schema.name}: the sweep's findings differ from the expected ones"
            + (f" (on objects expected clean: {sorted(k[2] for k in clean_hit)})" if clean_hit else "")
            + ":\n" + judgement.explain(),
            pytrace=False,
        )
