"""Building rows to insert: from a row of the table (the seed data), with fresh keys, and
the user's values on top. Values travel as JSON through ``jsonb_populate_record``, so a
payload for a ``jsonb`` column stays JSON and every other column gets its own type."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Iterable, Mapping
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


def base_row(
    rel: Relation, sample: Mapping[str, Any] | None, values: Mapping[str, Any], *, keep: Iterable[str] = ()
) -> dict[str, Any]:
    """A row to insert: ``sample`` with generated and identity columns dropped, one column
    of each unique key made fresh (left to its default when it has one), ``values`` on top.
    Columns in ``keep`` (the tenant column) are never renewed."""
    fresh = _columns_to_renew(rel, values, set(keep))
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


def _columns_to_renew(rel: Relation, values: Mapping[str, Any], keep: set[str]) -> set[str]:
    """One column per unique key, so that a copied row does not collide with its original:
    one with a default if there is one, else the one whose type takes a fresh value most
    surely; never a kept column, and a foreign key column only as a last resort."""
    references = {c for k in rel.constraints if k.type == "f" for c in k.columns}
    fresh: set[str] = set()
    for key in sorted(rel.unique_keys, key=len):
        if not key or any(c in values or c in fresh for c in key):
            continue
        columns = [c for c in (rel.column(n) for n in key) if c is not None and c.name not in keep]
        ranked = sorted(columns, key=lambda c: (not c.has_default, c.name in references, _freshness(c.type)))
        if ranked and (ranked[0].has_default or _freshness(ranked[0].type) < len(_FRESHNESS)):
            fresh.add(ranked[0].name)
    return fresh


_FRESHNESS = ("uuid", "integer", "bigint", "smallint", "numeric", "text", "character varying", "citext",
              "character", "date", "timestamp with time zone", "timestamp without time zone")


def _freshness(type_name: str) -> int:
    base = type_name.split("(")[0].strip()
    return _FRESHNESS.index(base) if base in _FRESHNESS else len(_FRESHNESS)


def _fresh(type_name: str, old: Any) -> Any:
    """A value of ``type_name`` unlikely to exist yet (as JSON, for jsonb_populate_record)."""
    base = type_name.split("(")[0].strip()
    if base == "uuid":
        return str(uuid.uuid4())
    if base in _INT_RANGES:
        return random.randrange(_INT_RANGES[base] // 2, _INT_RANGES[base])
    if base == "numeric":
        return random.randrange(10**8, 10**9)
    day = f"{random.randrange(2900, 2999)}-{random.randrange(1, 13):02d}-{random.randrange(1, 29):02d}"
    if base == "date":
        return day
    if base.startswith("timestamp"):
        return f"{day}T{random.randrange(24):02d}:{random.randrange(60):02d}:00Z"
    if isinstance(old, str):
        suffix = f"~{uuid.uuid4().hex[:8]}"
        limit = re.search(r"\((\d+)\)", type_name)
        if limit:
            width = int(limit.group(1))
            return (old[: max(0, width - len(suffix))] + suffix)[:width]
        return old + suffix
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
