"""Reading the catalog: every kind of object in one query for all relations in scope, rows
read by name (a row factory), then the analysed trees of policies and functions resolved
in one more query per kind (:class:`pytest_rlscheck.policy_model.Names`) and turned into facts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from . import catalog_sql as q
from .catalog import Catalog, Column, Constraint, Dependency, Function, Index, Policy, Relation, Trigger
from .nodetree import parse, without_locations
from .policy_model import ExprFacts, Names, body_facts, defaults_to_caller, expression_facts

__all__ = ["load", "resolve_relation"]


def load(
    conn: psycopg.Connection[Any],
    *,
    oids: Iterable[int] = (),
    schemas: Sequence[str] = (),
    functions: bool = False,
) -> Catalog:
    """Read the relations given by ``oids`` and every relation of ``schemas``; with
    ``functions``, the project's functions in ``schemas`` too."""
    scope = {"oids": list(oids), "schemas": list(schemas)}

    def rows(query: str) -> list[dict[str, Any]]:
        cur = conn.execute(query, scope)
        cur.row_factory = dict_row  # the rows by column name
        return cur.fetchall()

    def tuples(query: str) -> list[tuple[Any, ...]]:
        return conn.execute(query, scope).fetchall()

    relations = tuples(q.RELATIONS_SQL)
    parts: dict[int, dict[str, list[Any]]] = {}

    def add(oid: int, kind: str, item: Any) -> None:
        parts.setdefault(oid, {}).setdefault(kind, []).append(item)

    for oid, *rest in tuples(q.COLUMNS_SQL):
        add(oid, "columns", Column(*rest))
    for oid, name, kind, definition, validated, cols, ref, ref_cols, ref_oid in tuples(q.CONSTRAINTS_SQL):
        foreign = kind == "f"
        add(oid, "constraints", Constraint(name, kind, definition, validated, tuple(cols), ref if foreign else None,
                                           tuple(ref_cols) if foreign else (), ref_oid if foreign else None))
    for oid, name, unique, primary, valid, partial, definition, cols in tuples(q.INDEXES_SQL):
        add(oid, "indexes", Index(name, unique, primary, valid, partial, definition, tuple(cols)))
    policy_rows = tuples(q.POLICIES_SQL)
    for oid, grantee, privilege in tuples(q.RELATION_GRANTS_SQL):
        add(oid, "grants", (grantee, privilege))
    for oid, referenced, name, rls in tuples(q.VIEW_DEPENDENCIES_SQL):
        add(oid, "depends_on", Dependency(referenced, name, rls))
    for oid, action in tuples(q.VIEW_QUERIES_SQL):
        for origin in _column_origins(action):
            add(oid, "column_origins", origin)
    for oid, *rest, columns in tuples(q.TRIGGERS_SQL):
        add(oid, "triggers", Trigger(*rest, tuple(columns or ())))

    function_rows: list[dict[str, Any]] = []
    executable: dict[int, list[str]] = {}
    if functions and schemas:
        for oid, grantee in tuples(q.FUNCTION_GRANTS_SQL):
            executable.setdefault(oid, []).append(grantee)
        function_rows = rows(q.FUNCTIONS_SQL if conn.info.server_version < 140000 else q.FUNCTIONS_SQL_14)

    # every OID the trees name, resolved in two queries; then each tree parsed and read once
    # (policies repeat: the same membership condition on every table is read one time)
    names = Names.load(
        conn,
        [text for r in policy_rows for text in (r[7], r[8]) if text]
        + [text for r in function_rows for text in (r["argdefaults"], r["sqlbody"]) if text],
    )
    positions = {oid: {c.position: c.name for c in kinds.get("columns", ())} for oid, kinds in parts.items()}
    known: dict[tuple[str, tuple[tuple[int, str], ...]], ExprFacts] = {}

    def facts(text: str | None, columns: dict[int, str]) -> ExprFacts:
        if text is None:
            return ExprFacts()
        key = (without_locations(text), tuple(sorted(columns.items())))
        if key not in known:
            known[key] = expression_facts(parse(key[0]), names, columns)
        return known[key]

    for oid, name, command, permissive, roles, using, check, using_tree, check_tree in policy_rows:
        columns = positions.get(oid, {})
        add(oid, "policies", Policy(
            name, command, permissive, tuple(roles), using, check, facts(using_tree, columns), facts(check_tree, columns)
        ))
    function_trees = [(parse(r["argdefaults"]), r["sqlbody"]) for r in function_rows]

    built = tuple(
        Relation(*row, **{kind: tuple(items) for kind, items in parts.get(row[0], {}).items()}) for row in relations
    )
    funcs = tuple(
        _function(r, tuple(executable.get(r["oid"], ())), defaults, sqlbody, names)
        for r, (defaults, sqlbody) in zip(function_rows, function_trees, strict=True)
    )
    return Catalog(built, funcs)


def _column_origins(action: str | None) -> list[tuple[str, int, int]]:
    """(column, table oid, column number) of each output column of a view's query that is
    a plain column of a table."""
    try:
        tree = parse(action)
    except ValueError:
        return []
    query = tree[0] if isinstance(tree, list) and tree else None
    out = []
    entries = query.get("targetList") if query is not None and hasattr(query, "get") else None
    for entry in entries or []:
        if getattr(entry, "type", None) != "TARGETENTRY" or entry.get("resjunk"):
            continue
        table, column, name = entry.get("resorigtbl"), entry.get("resorigcol"), entry.get("resname")
        if table and column and name:
            out.append((str(name), int(table), int(column)))
    return out


def _function(r: dict[str, Any], executable: tuple[str, ...], defaults: Any, sqlbody: str | None, names: Names) -> Function:
    inputs = tuple(r["argument_names"])
    types = tuple(r["argument_types"])
    # proargdefaults: the DEFAULTs of the last len(defaults) input arguments
    trees = list(defaults or [])
    padded = [None] * (len(types) - len(trees)) + trees if len(trees) <= len(types) else []
    caller_defaults = tuple(
        name for name, tree in zip(inputs, padded, strict=False) if name and tree is not None and defaults_to_caller(tree, names)
    )
    return Function(
        r["oid"], r["schema"], r["name"], r["arguments"], r["language"], r["volatility"], r["security_definer"],
        tuple(r["config"] or ()), r["returns_set"], r["result"], r["owner"], r["owner_bypasses_rls"], types, inputs,
        executable, r["body"] or "", caller_defaults, body_facts(r["body"] or "", sqlbody, names), len(trees),
    )


def resolve_relation(conn: psycopg.Connection[Any], name: str) -> Relation:
    """Look ``name`` up the way SQL would (search_path applies) and load it from the catalog."""
    row = conn.execute(q.RESOLVE_SQL, [name]).fetchone()
    if row is None:
        path = conn.execute(q.SEARCH_PATH_SQL).fetchone()
        raise LookupError(f"relation {name!r} does not exist (search_path: {path[0] if path else '?'})")
    return load(conn, oids=[row[0]]).relation(row[0])
