"""Fuzzing a JSON(B) column's CHECK constraints with Hypothesis.

Every payload is inserted (in a savepoint, rolled back: one round trip) into a row that is
otherwise valid. The database must either accept it or reject it with a constraint
violation (23514, 23502); any other error raised while checking the row — ``22P02`` from a
cast, ``22003``, ``42883`` — is a defect of the constraint. With an oracle (a predicate, or
a JSON Schema), the database's verdict must also equal the oracle's. Hypothesis shrinks a
failure to a minimal payload (each one, when a run meets several distinct failures: they are
reported together in one :class:`FuzzFailure`), and keeps it in the example database of the
active settings profile (``.hypothesis/`` by default), so it is replayed first next time. Hypothesis' own
``ci`` profile, loaded when a ``CI`` variable is set, keeps no database and derandomizes
instead: the same payloads every run. ``settings=`` overrides either.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import psycopg
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.database import ExampleDatabase
from psycopg import sql

from .catalog import Constraint, Relation
from .errors import RlsAssertionError
from .rows import base_row as complete_row
from .rows import sample_row, to_json
from .scratch import bind, rolled_back
from .strategies import SQL_NULL, payloads_for

if TYPE_CHECKING:
    from .protocol import RlsProtocol as Rls

__all__ = ["FuzzFailure", "FuzzResult", "Verdict", "admits_null", "fuzz_constraint"]

CONSTRAINT_VIOLATIONS = {"23514", "23502"}
Oracle = Callable[[Any], bool] | Mapping[str, Any]


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    sqlstate: str | None = None
    constraint: str | None = None
    message: str | None = None

    @property
    def raised(self) -> bool:
        """Failed with something other than a constraint violation."""
        return not self.accepted and self.sqlstate not in CONSTRAINT_VIOLATIONS

    def describe(self) -> str:
        if self.accepted:
            return "accepted"
        by = f" by {self.constraint}" if self.constraint else ""
        return f"rejected{by} ({self.sqlstate}: {self.message})"


@dataclass
class FuzzResult:
    table: str
    column: str
    examples: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)  # "accepted" or the rejecting constraint


class FuzzFailure(RlsAssertionError):
    """A fuzzed payload broke the rule: ``payload`` is the shrunk example.

    When Hypothesis found several distinct failures in one run, the attributes are those of
    the first and ``failures`` lists them all (otherwise it holds this failure alone)."""

    def __init__(self, message: str, *, kind: str, payload: Any, verdict: Verdict, expected: bool | None,
                 constraint: Constraint | None, failures: list[FuzzFailure] | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # "raises" or "disagrees"
        self.payload = payload
        self.verdict = verdict
        self.expected = expected
        self.constraint = constraint
        self.failures: list[FuzzFailure] = failures if failures is not None else [self]

    @property
    def headline(self) -> str:
        """The failure without the advice that follows it (the sweep's finding message)."""
        return str(self).split("\nA CHECK")[0]


class _Found(Exception):
    def __init__(self, kind: str, payload: Any, verdict: Verdict, expected: bool | None = None) -> None:
        super().__init__(kind)
        self.kind, self.payload, self.verdict, self.expected = kind, payload, verdict, expected


def show(payload: Any) -> str:
    """The payload as JSON, readable, with invisible characters escaped."""
    if payload is SQL_NULL:
        return "SQL NULL"
    text = json.dumps(payload, ensure_ascii=False, default=str)
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)


class _Target:
    """One column of one table, with an otherwise valid row to put payloads in."""

    def __init__(self, rls: Rls, table: str, column: str, base: Mapping[str, Any] | None) -> None:
        self.rls = rls
        self.rel: Relation = rls.relation(table)
        col = self.rel.column(column)
        if col is None:
            raise ValueError(f"{self.rel.qualified} has no column {column!r}")
        if col.type not in ("jsonb", "json"):
            raise ValueError(f"{self.rel.qualified}.{column} is {col.type}; the fuzzer sends JSON to json/jsonb columns")
        self.column = column
        self.type = col.type
        self.checks = [c for c in self.rel.checks() if column in c.columns]
        with rls.as_owner(), rls.safely():
            sample = sample_row(rls.connection, self.rel)
        row = complete_row(self.rel, sample, dict(base or {}))
        row.pop(column, None)
        if sample is None and base is None:
            missing = [c.name for c in self.rel.columns if c.not_null and not c.has_default and c.name != column]
            if missing:
                raise ValueError(
                    f"{self.rel.qualified} has no row to copy and no default for {', '.join(missing)}: pass base_row"
                )
        names = list(row)
        if names:  # the other columns from the row, the payload for the fuzzed one
            self.statement = sql.SQL(
                "insert into {rel} ({cols}, {col}) select {cols}, %(payload)s::{type} "
                "from jsonb_populate_record(null::{rel}, %(row)s::jsonb)"
            ).format(
                rel=self.rel.ident,
                cols=sql.SQL(", ").join(map(sql.Identifier, names)),
                col=sql.Identifier(column),
                type=sql.SQL(self.type),
            )
        else:
            self.statement = sql.SQL("insert into {rel} ({col}) values (%(payload)s::{type})").format(
                rel=self.rel.ident, col=sql.Identifier(column), type=sql.SQL(self.type)
            )
        self.row_json = to_json(row)

    def attempt(self, payload: Any) -> Verdict:
        text = None if payload is SQL_NULL else json.dumps(payload)
        conn = self.rls.connection
        with self.rls.as_owner():
            try:
                rolled_back(conn, [bind(conn, self.statement, {"payload": text, "row": self.row_json})])
            except psycopg.Error as exc:
                return Verdict(False, exc.sqlstate, exc.diag.constraint_name, exc.diag.message_primary)
        return Verdict(True)

    def culprit(self, payload: Any) -> Constraint | None:
        """The CHECK constraint that raises for ``payload`` (each evaluated alone)."""
        text = None if payload is SQL_NULL else json.dumps(payload)
        conn = self.rls.connection
        for check in self.checks:
            expression = check.definition.removeprefix("CHECK ").removesuffix(" NOT VALID")
            query = sql.SQL("select {} from (select %(payload)s::{} as {}) as t").format(
                sql.SQL(expression), sql.SQL(self.type), sql.Identifier(self.column)
            )
            try:
                with self.rls.as_owner():
                    rolled_back(conn, [bind(conn, query, {"payload": text})])
            except psycopg.Error:
                return check
        return None


def _oracle(oracle: Oracle | None) -> Callable[[Any], bool] | None:
    if oracle is None or callable(oracle):
        return oracle  # type: ignore[return-value]
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - a declared dependency
        raise ValueError("a JSON Schema oracle needs the jsonschema package") from None
    validator = jsonschema.validators.validator_for(oracle)(oracle)
    return lambda payload: validator.is_valid(None if payload is SQL_NULL else payload)


def fuzz_constraint(
    rls: Rls,
    table: str,
    column: str,
    *,
    base_row: Mapping[str, Any] | None = None,
    oracle: Oracle | None = None,
    max_examples: int = 200,
    strategy: st.SearchStrategy[Any] | None = None,
    settings: hypothesis_settings | None = None,
) -> FuzzResult:
    """Insert generated payloads into ``table.column``; fail on a constraint that raises,
    or (with ``oracle``) on any payload the database judges differently.

    ``settings`` (a :class:`hypothesis.settings`) is the parent of the run's own: its
    database, derandomize, phases and verbosity are used; ``max_examples`` and the deadline
    and health checks (a database round trip per example) are set here."""
    target = _Target(rls, table, column, base_row)
    if not target.checks and oracle is None:
        raise RlsAssertionError(f"{target.rel.qualified}.{column} has no CHECK constraint and no oracle: nothing to fuzz")
    predicate = _oracle(oracle)
    payloads = strategy if strategy is not None else payloads_for(rls, table, column)
    result = FuzzResult(target.rel.qualified, column)

    def check(payload: Any) -> None:
        verdict = target.attempt(payload)
        result.examples += 1
        result.verdicts["accepted" if verdict.accepted else verdict.constraint or verdict.sqlstate or "?"] += 1
        if verdict.raised:
            raise _Found("raises", payload, verdict)
        if predicate is not None:
            expected = bool(predicate(payload))
            if expected != verdict.accepted:
                raise _Found("disagrees", payload, verdict, expected)

    parent = settings if settings is not None else hypothesis_settings.default
    database = parent.database
    if database is not None:  # one entry per table, column and oracle, so that a failure is replayed first
        database = _Namespaced(
            database, f"rlscheck-fuzz:{target.rel.qualified}.{column}:{'oracle' if oracle is not None else 'none'}:"
        )
    run = hypothesis_settings(
        parent,
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
        database=database,
    )(given(payloads)(check))
    try:
        run()
    except _Found as found:
        raise _failure(target, _without_bystanders(found, check)) from None
    except Exception as exc:
        if not hasattr(exc, "exceptions"):  # not an exception group: not ours to explain
            raise
        _raise_group(target, exc, check)
    return result


class _Namespaced(ExampleDatabase):
    """``database`` with every key under ``prefix``. Hypothesis keys a test's examples by its
    function, which is the same ``check`` for every column fuzzed."""

    def __init__(self, database: ExampleDatabase, prefix: str) -> None:
        super().__init__()
        self.database = database
        self.prefix = prefix.encode()

    def save(self, key: bytes, value: bytes) -> None:
        self.database.save(self.prefix + key, value)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        return self.database.fetch(self.prefix + key)

    def delete(self, key: bytes, value: bytes) -> None:
        self.database.delete(self.prefix + key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self.database.move(self.prefix + src, self.prefix + dest, value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.database!r}, {self.prefix.decode()!r})"


def _raise_group(target: _Target, group: Exception, check: Callable[[Any], None]) -> NoReturn:
    """Hypothesis met several distinct failures and raised them as an exception group: one
    FuzzFailure for the ``_Found`` among them; anything else in the group is raised as is
    (with the FuzzFailure as its cause, when there was one)."""
    found, others = _split_group(group)
    failure = _several(target, [_failure(target, _without_bystanders(f, check)) for f in found]) if found else None
    if others:
        rest = others[0] if len(others) == 1 else group.split(_Found)[1]  # type: ignore[attr-defined]
        raise rest from failure
    assert failure is not None
    raise failure from None


def _split_group(group: BaseException) -> tuple[list[_Found], list[BaseException]]:
    """The ``_Found`` and the other exceptions of a (possibly nested) exception group."""
    found: list[_Found] = []
    others: list[BaseException] = []
    for exc in getattr(group, "exceptions", ()):
        if isinstance(exc, _Found):
            found.append(exc)
        elif hasattr(exc, "exceptions"):
            inner_found, inner_others = _split_group(exc)
            found += inner_found
            others += inner_others
        else:
            others.append(exc)
    return found, others


def _several(target: _Target, failures: list[FuzzFailure]) -> FuzzFailure:
    """One FuzzFailure for distinct failures: those that raise first, the same payload once."""
    unique: dict[tuple[str, str], FuzzFailure] = {}
    for failure in sorted(failures, key=lambda f: f.kind != "raises"):
        unique.setdefault((failure.kind, show(failure.payload)), failure)
    kept = list(unique.values())
    if len(kept) == 1:
        return kept[0]
    blocks = "\n\n".join(f"{i}. {f}" for i, f in enumerate(kept, 1))
    first = kept[0]
    return FuzzFailure(
        f"{target.rel.qualified}.{target.column}: {len(kept)} distinct failures:\n\n{blocks}",
        kind=first.kind, payload=first.payload, verdict=first.verdict, expected=first.expected,
        constraint=first.constraint, failures=kept,
    )


def _without_bystanders(found: _Found, check: Callable[[Any], None]) -> _Found:
    """Drop the keys the failure does not need, one at a time, keeping it the same kind.

    Hypothesis shrinks well, but a key drawn before the culprit can survive it; the report
    is clearer with the culprit alone."""
    while isinstance(found.payload, dict) and len(found.payload) > 1:
        for key in list(found.payload):
            smaller = {k: v for k, v in found.payload.items() if k != key}
            try:
                check(smaller)
            except _Found as again:
                if again.kind == found.kind:
                    found = again
                    break
        else:
            return found
    return found


def _failure(target: _Target, found: _Found) -> FuzzFailure:
    name = f"{target.rel.qualified}.{target.column}"
    payload = show(found.payload)
    verdict = found.verdict
    if found.kind == "raises":
        culprit = target.culprit(found.payload)
        source = f"constraint {culprit.name}" if culprit else "checking the row"
        message = (
            f"{name}: {source} raises {verdict.sqlstate} instead of accepting or rejecting the payload: "
            f"{verdict.message}\n  shrunk payload: {payload}\n"
            + (f"  constraint: {culprit.definition}\n" if culprit else "")
            + "A CHECK must return false for bad input, not fail: the application gets an error it cannot map "
            "to a validation message, and VALIDATE CONSTRAINT on existing rows aborts.\n"
            "Fix: test the type before converting, e.g. CASE WHEN jsonb_typeof(metadata -> 'n') = 'number' "
            "THEN (metadata -> 'n')::numeric > 0 ELSE false END."
        )
        return FuzzFailure(message, kind="raises", payload=found.payload, verdict=verdict, expected=None,
                           constraint=culprit)
    wants = "accept" if found.expected else "reject"
    message = (
        f"{name}: the database and the oracle disagree on {payload}: the database {verdict.describe()}, "
        f"the oracle would {wants} it.\n  shrunk payload: {payload}\n  constraints on the column:\n"
        + "".join(f"    {c.name}: {c.definition}\n" for c in target.checks)
    )
    return FuzzFailure(message, kind="disagrees", payload=found.payload, verdict=verdict, expected=found.expected,
                       constraint=None)


def admits_null(rls: Rls, table: str, column: str) -> Constraint | None:
    """A CHECK on a nullable column that reads like it requires a value, yet lets SQL NULL
    through (a CHECK that evaluates to NULL passes): the constraint, or None."""
    target = _Target(rls, table, column, None)
    col = target.rel.column(column)
    if col is None or col.not_null or not target.checks:
        return None
    explicit = [c for c in target.checks if "IS NULL" in c.definition.upper() or "COALESCE" in c.definition.upper()]
    if explicit or not target.attempt(SQL_NULL).accepted:
        return None
    return target.checks[0]
