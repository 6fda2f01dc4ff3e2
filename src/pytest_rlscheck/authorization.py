"""The authorization tables: what the policies consult to decide who may see a row.

Read from the policy model, not from names: a table is consulted when it is in the range
table of a policy's subquery (``exists (select 1 from members m where ...)``), or when a
function the policy calls reads it (directly or through functions it calls by name; SQL
bodies from their trees or tokenized, PL/pgSQL tokenized). Such a table is a membership
table when it holds a user id (a foreign key to ``auth.users``, or a column compared with
``auth.uid()``) and a tenant key: a user who can write their own id into it joins a tenant.
Nothing here runs a query; :mod:`pytest_rlscheck.escalation` measures what a write gains.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .catalog import Catalog, Function, Relation
from .config import SweepConfig
from .sqlsplit import tokens
from .tenancy import find_tenant_key

__all__ = ["AuthorizationTable", "authorization_tables", "check_values", "policy_reads"]


@dataclass(frozen=True)
class AuthorizationTable:
    """A membership table: a user id and a tenant per row, consulted by the policies of
    ``dependents`` (which may include itself)."""

    relation: Relation
    user_column: str
    tenant_column: str
    #: Columns with a closed set of values (a CHECK listing them, a boolean): the role a
    #: membership grants, with the values allowed.
    role_columns: Mapping[str, tuple[str, ...]]
    dependents: tuple[Relation, ...]


def _functions_by_name(catalog: Catalog) -> dict[str, list[Function]]:
    by_name: dict[str, list[Function]] = {}
    for fn in catalog.functions:
        by_name.setdefault(fn.name.lower(), []).append(fn)
        by_name.setdefault(fn.qualified.lower(), []).append(fn)
    return by_name


def _function_relations(catalog: Catalog, fn: Function) -> set[int]:
    """The relations of the catalog a function body names: from its tree by OID, from its
    text by name (qualified, or bare for any schema of the catalog)."""
    known = {r.oid for r in catalog.relations}
    found = {oid for oid in fn.facts.relation_oids if oid in known}
    for name in fn.facts.relations:
        found |= {r.oid for r in catalog.relations if name in (r.qualified.lower(), r.name.lower())}
    return found


def policy_reads(catalog: Catalog) -> dict[int, frozenset[int]]:
    """For each relation with policies: the relations its policies read, in subqueries and
    through the functions they call (transitively, by name)."""
    by_name = _functions_by_name(catalog)
    reads_of: dict[int, set[int]] = {}  # function oid -> relations, computed on first use

    def function_reads(fn: Function) -> set[int]:
        if fn.oid in reads_of:
            return reads_of[fn.oid]
        reads_of[fn.oid] = found = set()  # a cycle stops here
        found |= _function_relations(catalog, fn)
        for called in fn.facts.calls:
            for other in by_name.get(called, ()):
                found |= function_reads(other)
        return found

    out: dict[int, frozenset[int]] = {}
    for rel in catalog.relations:
        read: set[int] = set()
        for policy in rel.policies:
            for _, _, facts in policy.clauses():
                read |= facts.relations
                for call in facts.calls:
                    for fn in by_name.get(call.function.lower(), ()):
                        read |= function_reads(fn)
        if read:
            out[rel.oid] = frozenset(read)
    return out


def check_values(rel: Relation, column: str) -> tuple[str, ...]:
    """The values a CHECK on ``column`` alone lists (``role in ('owner', 'admin', 'member')``):
    its string constants, read with the SQL tokenizer from the constraint's definition."""
    names = {c.name.lower() for c in rel.columns}
    values: list[str] = []
    for constraint in rel.checks():
        text = constraint.definition
        words = {text[s:e].lower() if k == "word" else text[s + 1 : e - 1] for k, s, e in tokens(text) if k in ("word", "quoted")}
        if words & names != {column.lower()}:
            continue
        values += [text[s + 1 : e - 1].replace("''", "'") for k, s, e in tokens(text) if k == "string"]
    return tuple(dict.fromkeys(values))


def _user_column(rel: Relation, catalog_reads: Iterable[tuple[int, str]], compared: set[str]) -> str | None:
    """The column holding a user id: a foreign key to auth.users, or one the policies compare
    with auth.uid() (its own, or other tables' subqueries over it); a compared one first."""
    referencing = [k.columns[0] for k in rel.constraints if k.to_auth_users and len(k.columns) == 1]
    compared = compared | {column for oid, column in catalog_reads if oid == rel.oid}
    ranked = [c for c in referencing if c in compared] + referencing + sorted(compared)
    return ranked[0] if ranked else None


def _role_columns(rel: Relation, skip: set[str]) -> dict[str, tuple[str, ...]]:
    """Columns with a closed set of values a CHECK lists, and booleans (enums are read by
    the probe, which asks the server for their labels)."""
    out: dict[str, tuple[str, ...]] = {}
    for column in rel.columns:
        if column.name in skip or column.generated or column.identity:
            continue
        listed = check_values(rel, column.name)
        if listed:
            out[column.name] = listed
        elif column.type == "boolean":
            out[column.name] = ("true", "false")
    return out


def authorization_tables(catalog: Catalog, tables: Iterable[Relation], config: SweepConfig | None = None) -> dict[int, AuthorizationTable]:
    """The membership tables among ``tables`` that some policy of ``tables`` reads."""
    tables = [t for t in tables if t.kind in ("r", "p")]
    reads = policy_reads(catalog)
    user_reads = {
        read for rel in tables for p in rel.policies for _, _, facts in p.clauses() for read in facts.relation_user_columns
    }
    out: dict[int, AuthorizationTable] = {}
    for rel in tables:
        dependents = tuple(d for d in tables if d.rls_enabled and rel.oid in reads.get(d.oid, ()))
        if not dependents:
            continue
        compared = {c for p in rel.policies for _, _, facts in p.clauses() for c in facts.compared_with_user()}
        user = _user_column(rel, user_reads, compared)
        key = find_tenant_key(rel, config)
        if user is None or key is None or key.per_user or not key.column or key.column == user:
            continue
        roles = _role_columns(rel, {user, key.column, *rel.primary_key})
        out[rel.oid] = AuthorizationTable(rel, user, key.column, roles, dependents)
    return out
