"""Declarative checks: markers that run an assertion as part of the test.

A test carrying any of them gets the ``rls`` fixture whether it asks for it or not; the
checks run after the test body (so the body may prepare data), all of them, and the test
fails with every failing check's message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .client import Rls

__all__ = ["CHECK_MARKERS", "MARKERS", "run_marker_checks", "start_identity"]

MARKERS = {
    "rls_fresh_db": "rls_fresh_db: give the test's rls fixture a database of its own (commits allowed)",
    "rls_user": "rls_user(sub, tenant=None, role='authenticated', claims=None): rls starts as this user",
    "rls_policies": "rls_policies(table, count=None, commands=None, roles=None, permissive=None): check the policies",
    "rls_isolated": "rls_isolated(table, user=..., other=..., tenant_column=None, tenant_sql=None, ops=...): "
    "prove tenant isolation",
    "rls_rejects": "rls_rejects(table, row, constraint=None, sqlstate='23514'): the row must be rejected",
    "rls_initplan": "rls_initplan(sql, function='auth.uid', as_user=None): each call site runs once",
    "rls_fuzz": "rls_fuzz(table, column, oracle=None, base_row=None, max_examples=200): fuzz the column's CHECKs",
}
CHECK_MARKERS = ("rls_policies", "rls_isolated", "rls_rejects", "rls_initplan", "rls_fuzz")


def _bind(mark: pytest.Mark, *names: str) -> dict[str, Any]:
    """Positional marker arguments by name, then keywords."""
    if len(mark.args) > len(names):
        raise pytest.UsageError(f"@pytest.mark.{mark.name} takes at most {len(names)} positional arguments")
    return {**dict(zip(names, mark.args)), **mark.kwargs}


def start_identity(item: pytest.Item, rls: Rls) -> None:
    """``@pytest.mark.rls_user``: the test starts as that user (undone with the test)."""
    mark = item.get_closest_marker("rls_user")
    if mark is None:
        return
    kwargs = _bind(mark, "sub")
    principal = rls.user(
        kwargs.pop("sub"), tenant=kwargs.pop("tenant", None), role=kwargs.pop("role", "authenticated"),
        claims=kwargs.pop("claims", None),
    )
    rls.start_as(principal)  # left in place: the end of the test undoes it


def run_marker_checks(item: pytest.Item, rls: Rls) -> None:
    failures: list[str] = []
    for name in CHECK_MARKERS:
        for mark in item.iter_markers(name):
            try:
                _run(name, mark, rls)
            except AssertionError as exc:
                failures.append(f"@pytest.mark.{name}{_args(mark)} failed:\n{exc}")
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def _run(name: str, mark: pytest.Mark, rls: Rls) -> None:
    if name == "rls_policies":
        rls.assert_policies(**_bind(mark, "table"))
    elif name == "rls_isolated":
        rls.assert_isolated(**_bind(mark, "table"))
    elif name == "rls_rejects":
        rls.assert_rejected(**_bind(mark, "table", "row"))
    elif name == "rls_initplan":
        kwargs = _bind(mark, "query")
        if "sql" in kwargs:
            kwargs["query"] = kwargs.pop("sql")
        rls.assert_evaluated_once(**kwargs)
    elif name == "rls_fuzz":
        rls.fuzz_constraint(**_bind(mark, "table", "column"))


def _args(mark: pytest.Mark) -> str:
    parts = [repr(a) for a in mark.args] + [f"{k}={v!r}" for k, v in mark.kwargs.items()]
    return f"({', '.join(parts)})"
