"""Building rows to insert: from a row of the table (the seed data), with fresh keys, and
the user's values on top. Values travel as JSON through ``jsonb_populate_record``, so a
payload for a ``jsonb`` column stays JSON and every other column gets its own type."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from .catalog import Relation

__all__ = ["base_row", "insert_statement", "sample_row", "to_json"]

SAMPLE_SQL = "select to_jsonb(t) from {rel} as t {where} limit 1"
_INT_RANGES = {"smallint": 32_000, "integer": 2_000_000_000, "bigint": 9_000_000_000_000_000_000}


def to_json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), default=str)


def sample_row(
    conn: psycopg.Connection[Any],
    rel: Relation,
    where: sql.Composable | None = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """One row of ``rel`` as a dict of JSON values (read with the caller's rights)."""
    query = sql.SQL(SAMPLE_SQL).format(rel=rel.ident, where=sql.SQL("where ") + where if where else sql.SQL(""))
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def base_row(rel: Relation, sample: Mapping[str, Any] | None, values: Mapping[str, Any]) -> dict[str, Any]:
    """A row to insert: ``sample`` with generated and identity columns dropped, one column
    of each unique key made fresh (left to its default when it has one), ``values`` on top."""
    fresh = _columns_to_renew(rel, values)
    row: dict[str, Any] = {}
    for column in rel.columns:
        if column.generated or column.identity:
            continue
        if column.name in values:
            row[column.name] = values[column.name]
        elif sample is not None and column.name in sample:
            if column.name not in fresh:
                row[column.name] = sample[column.name]
            elif not column.has_default:
                row[column.name] = _fresh(column.type, sample[column.name])
    return row


def _columns_to_renew(rel: Relation, values: Mapping[str, Any]) -> set[str]:
    """One column per unique key, so that a copied row does not collide with its original."""
    fresh: set[str] = set()
    for key in sorted(rel.unique_keys, key=len):
        if not key or any(c in values or c in fresh for c in key):
            continue
        columns = [rel.column(c) for c in key]
        pick = next((c for c in columns if c is not None and c.has_default), None) or next(
            (c for c in columns if c is not None), None
        )
        if pick is not None:
            fresh.add(pick.name)
    return fresh


def _fresh(type_name: str, old: Any) -> Any:
    if type_name == "uuid":
        return str(uuid.uuid4())
    if type_name in _INT_RANGES:
        return random.randrange(_INT_RANGES[type_name] // 2, _INT_RANGES[type_name])
    if isinstance(old, str):
        return f"{old}-rlscheck-{uuid.uuid4().hex[:8]}"
    return old


def insert_statement(rel: Relation, row: Mapping[str, Any]) -> tuple[sql.Composed, dict[str, Any]]:
    """``INSERT INTO rel (cols) SELECT cols FROM jsonb_populate_record(null::rel, $row)``."""
    columns = [sql.Identifier(name) for name in row]
    if not columns:
        return sql.SQL("insert into {} default values").format(rel.ident), {}
    query = sql.SQL("insert into {rel} ({cols}) select {cols} from jsonb_populate_record(null::{rel}, %(row)s::jsonb)").format(
        rel=rel.ident, cols=sql.SQL(", ").join(columns)
    )
    return query, {"row": to_json(row)}
