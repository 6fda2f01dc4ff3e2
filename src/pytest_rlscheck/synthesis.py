"""Zero-config principals and rows for the sweep's measured checks.

A project that configures no principals, or whose seed has no rows for them in some table,
gets them made here, in the sweep's own database (never in the user's files, never in the
database the project's own tests share):

- two users in ``auth.users`` (``alice@rlscheck.test``, ``bob@rlscheck.test``), unless two
  principals of different tenants are configured;
- two tenants, found from the schema: the table the tenant columns' foreign keys point at
  (the tenant root, ``organizations``). A user's tenant is the root row their sign-up made
  (a trigger on ``auth.users`` creating a personal account and its membership), else a root
  row made for them (its key as the database gives it: a default, an identity); without a
  root, each tenant is a fresh value of the tenant column's type;
- for every table the API reaches with RLS on, and every table their foreign keys need, one
  row per tenant that has none yet, in foreign-key order: the tenant column holds the tenant,
  a column pointing at ``auth.users`` (or one the policies compare with ``auth.uid()``) the
  user, a foreign key the tenant's own row of the parent; NOT NULL columns without a default
  get a value of their type, unique values kept distinct. A membership table (a user and a
  tenant) gets the most privileged role its CHECK or enum allows, so that the user can act
  on their own tenant's rows; rows are written with the user's claims set, as the user would
  write them, so defaults and triggers that read ``auth.uid()`` see them.

A row a CHECK constraint refuses is tried again with the values the constraint names (its
literals; for JSONB, objects built from the keys and values it tests, read by the fuzzing
strategies' constraint analysis), a duplicate with fresh values. A table no row can be made
for is left out with the reason, which the summary shows. The ids made here are ``uuid5``
values, the same in every run and every xdist worker; ids the schema makes (a sign-up
trigger's ``gen_random_uuid()``) are whatever it makes, which is why the sweep measures with
the principals of the database it synthesized into.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql

from . import auth_users
from .catalog import AUTH_USERS, Catalog, Column, Constraint, Relation
from .config import SweepConfig
from .errors import SignUpFailed
from .impersonation import Principal
from .sqlsplit import tokens
from .tenancy import TenantKey, find_tenant_key

__all__ = ["NAMESPACE", "SYNTHESIZED", "Synthesis", "plan", "plan_principals", "summary_lines", "synthesize"]

NAMESPACE = uuid.UUID("5b0c8a52-2f7e-4f7e-9c55-7c1f3a0e6a11")  # of every id made here
SYNTHESIZED = ("alice", "bob")
STORAGE_OBJECTS = "storage.objects"
BUCKETS_SQL = "select id from storage.buckets order by id"
#: Where no bucket exists: one of our own, private, for the objects the checks need.
CREATE_BUCKET_SQL = "insert into storage.buckets (id, name, public) values ('rlscheck', 'rlscheck', false)"
#: Roles a membership row gets, most privileged first; other tables take the least.
PRIVILEGED = ("owner", "admin", "administrator", "manager", "editor", "member", "user")
ORDINARY = ("member", "user", "viewer", "editor")
MAX_ATTEMPTS = 40
#: What another value may cure: a CHECK, a duplicate, a NOT NULL, a value the type refuses
VALUE_ERRORS = ("23514", "23505", "23502", "22P02", "22001", "22003", "22007", "22008")
_TEXT = ("text", "character varying", "character", "citext", "name", "varchar", "bpchar")
_WIDTH = re.compile(r"\((\d+)\)$")  # character varying(40)
_NEEDS = re.compile(r"no row of (\S+) for ")  # our own words, in _row_for
_INDEX = re.compile(r"\)\[(\d+)\]$")  # the folder of ``(storage.foldername(name))[k]`` (as the policy model writes it)
_NUMBER = re.compile(r"\d+(\.\d+)?")

TYPES_SQL = """
select a.attrelid::int, a.attname, format_type(b.oid, null), b.typcategory,
       array(select e.enumlabel from pg_enum e where e.enumtypid = b.oid order by e.enumsortorder)::text[]
from pg_attribute a
join pg_type t on t.oid = a.atttypid
join pg_type b on b.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end
where a.attrelid = any(%(oids)s::oid[]) and a.attnum > 0 and not a.attisdropped
"""
CLAIMS_SQL = "select set_config('request.jwt.claims', %(claims)s, true), set_config('role', 'none', true)"
CLEAR_CLAIMS_SQL = "select set_config('request.jwt.claims', '', true)"


@dataclass(frozen=True)
class Synthesis:
    """What was made: the principals the sweep uses, and per table the rows synthesized."""

    principals: tuple[Principal, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict)  # sub -> name (alice, bob, or the config's key)
    synthesized_users: tuple[str, ...] = ()  # names of the principals made here
    tenant_root: str | None = None
    rows: Mapping[str, int] = field(default_factory=dict)  # table -> rows made
    skipped: Mapping[str, str] = field(default_factory=dict)  # table -> why no row could be made
    #: tenant keys read from the schema where neither config nor column names give one: the
    #: tenant root's own key (``organizations.id``), by table oid
    keys: Mapping[int, TenantKey] = field(default_factory=dict, compare=False)
    failed: str | None = None  # why nothing could be synthesized

    @property
    def made_anything(self) -> bool:
        return bool(self.synthesized_users or self.rows)

    @property
    def worth_saying(self) -> bool:
        return self.made_anything or self.failed is not None

    def name(self, principal: Principal) -> str:
        return self.names.get(str(principal.sub), str(principal.sub))

    def to_dict(self) -> dict[str, Any]:
        return {
            "principals": [
                {"name": self.name(p), "sub": p.sub, "tenant": p.tenant, "synthesized": self.name(p) in self.synthesized_users}
                for p in self.principals
            ],
            "tenant_root": self.tenant_root,
            "rows": dict(self.rows),
            "skipped": dict(self.skipped),
            "failed": self.failed,
        }


def summary_lines(data: Mapping[str, Any]) -> list[str]:
    """For the terminal summary and the Markdown report (from :meth:`Synthesis.to_dict`)."""
    lines = []
    if data.get("failed"):
        lines.append(f"could not synthesize principals and rows: {data['failed']}")
    made = [p for p in data.get("principals", ()) if p.get("synthesized")]
    if made:
        root = f" in tenants of {data['tenant_root']}" if data.get("tenant_root") else ""
        lines.append(
            "synthesized principals (none configured): "
            + ", ".join(f"{p['name']} (sub {p['sub']}" + (f", tenant {p['tenant']})" if p.get("tenant") else ")") for p in made)
            + root
        )
    rows = data.get("rows") or {}
    if rows:
        lines.append(
            f"synthesized rows (the seed had none for a principal's tenant): {sum(rows.values())} in {len(rows)} table(s): "
            + ", ".join(f"{t} {n}" for t, n in sorted(rows.items()))
        )
    skipped = dict(data.get("skipped") or {})
    needing: dict[str, list[str]] = {}  # a table no row was made for -> the tables that needed its rows
    for table, why in skipped.items():
        parent = _NEEDS.match(why)
        if parent and parent.group(1) in skipped:
            needing.setdefault(_first_cause(parent.group(1), skipped), []).append(table)
    folded = {t for tables in needing.values() for t in tables}
    for table, why in sorted(skipped.items()):
        if table in folded:
            continue
        line = f"no rows synthesized for {table}: {why}"
        if needing.get(table):
            line += f" (nor for {len(needing[table])} table(s) that need its rows: {', '.join(sorted(needing[table]))})"
        lines.append(line)
    return lines


def _first_cause(table: str, skipped: Mapping[str, str]) -> str:
    seen = {table}
    while (found := _NEEDS.match(skipped.get(table, ""))) and found.group(1) in skipped and found.group(1) not in seen:
        table = found.group(1)
        seen.add(table)
    return table


# -- the principals ------------------------------------------------------------------------


def plan_principals(configured: Sequence[Principal], names: Sequence[str]) -> tuple[list[Principal], dict[str, str], bool]:
    """The configured principals when two of them are in different tenants (or are two users),
    else two to synthesize; and whether they are synthesized."""
    named = {str(p.sub): n for p, n in zip(configured, names)}
    tenants = {str(p.tenant) for p in configured if p.tenant is not None}
    if len(configured) >= 2 and (len(tenants) >= 2 or not tenants):
        return list(configured), named, False
    made = [Principal(str(_id("user", n)), None, "authenticated", None, f"{n}@rlscheck.test") for n in SYNTHESIZED]
    return made, {p.sub: n for p, n in zip(made, SYNTHESIZED)}, True


def _id(*parts: Any) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "/".join(map(str, parts)))


# -- the tenant model ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Types:
    """Each column's base type (domains resolved), category and enum labels."""

    base: Mapping[tuple[int, str], tuple[str, str, tuple[str, ...]]]

    def of(self, rel: Relation, column: Column) -> tuple[str, str, tuple[str, ...]]:
        return self.base.get((rel.oid, column.name), (column.type, "", ()))


def _closure(conn: psycopg.Connection[Any], catalog: Catalog, targets: list[Relation]) -> dict[int, Relation]:
    """The targets and every table their foreign keys need (loaded from other schemas too),
    without auth.users (the users are made on their own)."""
    known = {r.oid: r for r in catalog.relations}
    chosen: dict[int, Relation] = {r.oid: r for r in targets}
    pending = list(targets)
    while pending:
        missing = {
            fk.referenced_oid
            for rel in pending
            for fk in rel.foreign_keys()
            if fk.referenced_oid and fk.referenced_oid not in chosen and fk.referenced_oid not in known
        }
        if missing:
            for rel in Catalog.load(conn, oids=sorted(missing)).relations:
                known[rel.oid] = rel
        pending = []
        for rel in list(chosen.values()):
            for fk in rel.foreign_keys():
                parent = known.get(fk.referenced_oid or 0)
                if parent is not None and parent.oid not in chosen and parent.qualified != AUTH_USERS:
                    if parent.schema in ("auth", "storage") or parent.kind not in ("r", "p"):
                        continue  # the platform's own tables: existing rows only
                    chosen[parent.oid] = parent
                    pending.append(parent)
    return chosen


def _order(tables: Mapping[int, Relation]) -> list[Relation]:
    """Parents before children (a cycle is broken where it is met)."""
    done: list[Relation] = []
    state: dict[int, int] = {}

    def visit(rel: Relation) -> None:
        if state.get(rel.oid) == 2 or state.get(rel.oid) == 1:
            return
        state[rel.oid] = 1
        for fk in rel.foreign_keys():
            parent = tables.get(fk.referenced_oid or 0)
            if parent is not None and parent.oid != rel.oid:
                visit(parent)
        state[rel.oid] = 2
        done.append(rel)

    for rel in sorted(tables.values(), key=lambda r: r.qualified):
        visit(rel)
    return done


def _tenant_root(tables: Iterable[Relation], keys: Mapping[int, TenantKey | None], all_tables: Mapping[int, Relation]) -> tuple[Relation, str] | None:
    """The table most tenant columns' foreign keys point at, with the column they point at;
    or a table whose configured tenant column is its own primary key."""
    votes: Counter[tuple[int, str]] = Counter()
    for rel in tables:
        key = keys.get(rel.oid)
        if key is None or not key.column or key.per_user:
            continue
        references = any(key.column in fk.columns for fk in rel.foreign_keys())
        if rel.primary_key == (key.column,) and not references:
            votes[(rel.oid, key.column)] += 2  # configured as the root itself (organizations.id)
        for fk in rel.foreign_keys():
            if key.column in fk.columns and fk.referenced_oid in all_tables:
                votes[(fk.referenced_oid, fk.referenced_columns[fk.columns.index(key.column)])] += 1
    if not votes:
        return None
    (oid, column), _ = votes.most_common(1)[0]
    return all_tables[oid], column


# -- values --------------------------------------------------------------------------------


def _preferred(labels: Sequence[str], membership: bool, strings: frozenset[str] = frozenset()) -> list[str]:
    """A membership's role: a privileged one the policies name (``role = 'admin'``) first, then
    the most privileged; any other row's: the most ordinary."""
    order = PRIVILEGED if membership else ORDINARY

    def rank(value: str) -> tuple[bool, int]:
        known = value.lower() in order
        named = membership and known and value in strings
        return (not named, order.index(value.lower()) if known else len(order))

    return sorted(labels, key=rank)


def _strings(catalog: Catalog) -> frozenset[str]:
    """The string constants of the policies and of the functions' bodies (a ranking hint)."""
    found: set[str] = set()
    texts = [t for r in catalog.relations for p in r.policies for t in (p.using, p.with_check) if t]
    texts += [f.body for f in catalog.functions if f.body]
    for text in texts:
        found |= {v for v in _literals(text) if isinstance(v, str)}
    return frozenset(found)


def _value(base: str, category: str, labels: Sequence[str], column: str, tag: str, n: int, membership: bool) -> Any:
    """A value of the type, distinct per ``tag`` and ``n`` (JSON, for jsonb_populate_record)."""
    name = column.lower()
    if labels:
        return _preferred(labels, membership)[0]
    if category == "A":
        return []
    if base == "uuid":
        return str(_id(tag, column, n))
    if base in ("smallint", "integer", "bigint"):
        return 1000 + n
    if base in ("numeric", "real", "double precision", "money"):
        return 1 + n
    if base == "boolean":
        return False
    if base == "date":
        return "2024-01-01"
    if base.startswith("timestamp"):
        return "2024-01-01T00:00:00Z"
    if base.startswith("time"):
        return "12:00:00"
    if base == "interval":
        return "1 day"
    if base in ("json", "jsonb"):
        return {}
    if base == "bytea":
        return "\\x00"
    if base in ("inet", "cidr"):
        return f"10.0.{n // 250}.{n % 250 + 1}"
    if base in _TEXT:
        short = tag.rsplit("/", 1)[-1]
        if "email" in name:
            return f"{short}-{n}@rlscheck.test"
        if "url" in name or "website" in name or "link" in name:
            return f"https://rlscheck.test/{short}/{n}"
        if "host" in name or "domain" in name:
            return f"{short}-{n}.rlscheck.test"
        if "phone" in name:
            return f"+1555{n:07d}"
        return f"rlscheck {short} {column} {n}"
    if base == "tsvector":
        return ""
    return None


def _literals(definition: str) -> list[Any]:
    """The string and number constants of a CHECK definition, in order."""
    found: list[Any] = []
    for kind, start, end in tokens(definition):
        text = definition[start:end]
        candidates: list[Any] = []
        if kind == "string":
            candidates = [text[1:-1].replace("''", "'")]
        elif kind in ("word", "other") and _NUMBER.fullmatch(text):
            number = float(text)
            candidates = [int(v) if v.is_integer() else v for v in (number, number + 1)]
        found += [v for v in candidates if v not in found]
    return found


# -- making the rows -----------------------------------------------------------------------


class _Maker:
    def __init__(self, conn: psycopg.Connection[Any], types: _Types, strings: frozenset[str] = frozenset()) -> None:
        self.conn = conn
        self.types = types
        self.strings = strings  # the constants policies and functions compare with (role = 'admin')
        self.counter = 0

    def insert(self, rel: Relation, row: dict[str, Any], membership: bool, tag: str) -> tuple[dict[str, Any] | None, str]:
        """Insert ``row`` (adjusted until the constraints take it); the row made, or why not."""
        last = ""
        tried: set[str] = set()
        repaired: set[str] = set()  # the CHECKs whose candidates are queued: tried in turn, not renewed
        candidates: Iterator[dict[str, Any]] = iter([row])
        for _ in range(MAX_ATTEMPTS):
            current = next(candidates, None)
            if current is None:
                break
            fingerprint = json.dumps(current, sort_keys=True, default=str)
            if fingerprint in tried:
                continue
            tried.add(fingerprint)
            try:
                with self.conn.transaction():
                    made = self.conn.execute(*_insert(rel, current)).fetchone()
                return (made[0] if made else current), ""
            except psycopg.Error as exc:
                last = f"{exc.sqlstate}: {(exc.diag.message_primary or str(exc)).strip()}"
                if exc.sqlstate not in VALUE_ERRORS:
                    break  # a trigger, a foreign key, a privilege: another value does not help
                if exc.sqlstate == "23514" and exc.diag.constraint_name in repaired:
                    continue  # the next of that CHECK's candidates (a fresh list would start over)
                if exc.sqlstate == "23514" and exc.diag.constraint_name:
                    repaired.add(exc.diag.constraint_name)
                candidates = self._repair(rel, current, exc, membership, tag, candidates)
        return None, last or "no values found that its constraints accept"

    def _repair(self, rel: Relation, row: dict[str, Any], exc: psycopg.Error, membership: bool, tag: str,
                rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """More rows to try after ``exc``: for a CHECK, the columns it names set to the values it
        names; for a duplicate, fresh values; then whatever was left to try."""
        name = exc.diag.constraint_name
        constraint = next((c for c in rel.constraints if c.name == name), None)
        column_name = exc.diag.column_name
        variants: list[dict[str, Any]] = []
        if exc.sqlstate == "23505":
            self.counter += 1
            columns = constraint.columns if constraint else ()
            variants.append({**row, **{c: self._fresh(rel, c, tag) for c in columns if c in row}})
        elif exc.sqlstate == "23502" and column_name:
            column = rel.column(column_name)
            if column is not None:
                variants.append({**row, column_name: self.value_for(rel, column, tag, membership)})
        elif constraint is not None and constraint.type == "c":
            variants += self._satisfying(rel, row, constraint, membership, tag)
        else:  # a bad value of some column: leave the nullable ones out
            variants.append({k: v for k, v in row.items() if (rel.column(k) and rel.column(k).not_null)})  # type: ignore[union-attr]
        return _chain(variants, rest)

    def _satisfying(self, rel: Relation, row: dict[str, Any], check: Constraint, membership: bool, tag: str) -> list[dict[str, Any]]:
        literals = _literals(check.definition)
        out: list[dict[str, Any]] = []
        for name in check.columns:
            column = rel.column(name)
            if column is None:
                continue
            base, _, _ = self.types.of(rel, column)
            if base in ("json", "jsonb"):
                out += [{**row, name: value} for value in _json_candidates(check.definition, name)]
                continue
            ranked = _preferred([v for v in literals if isinstance(v, str)], membership, self.strings) + [
                v for v in literals if not isinstance(v, str)]
            out += [{**row, name: value} for value in ranked]
            if base in _TEXT:  # shapes a format check accepts more often than a sentence
                self.counter += 1
                out += [{**row, name: value} for value in (f"rlscheck_{self.counter}", f"rlscheck{self.counter}",
                                                           f"Rlscheck {self.counter}", str(self.counter), "a")]
            out.append({k: v for k, v in row.items() if k != name} if not column.not_null else row)
        # several columns in one CHECK: their literals together
        if len(check.columns) > 1 and literals:
            combined = dict(row)
            for name in check.columns:
                if name in row:
                    combined[name] = literals[0]
            out.append(combined)
        return out

    def _fresh(self, rel: Relation, name: str, tag: str) -> Any:
        column = rel.column(name)
        if column is None:
            return None
        base, category, labels = self.types.of(rel, column)
        return _value(base, category, labels, name, tag, 100 + self.counter, False)

    def value_for(self, rel: Relation, column: Column, tag: str, membership: bool) -> Any:
        base, category, labels = self.types.of(rel, column)
        value = _value(base, category, labels, column.name, tag, self.counter, membership)
        width = _WIDTH.search(column.type)
        if isinstance(value, str) and base in _TEXT and width:  # varchar(8): the end, where the counter is
            value = value[-int(width.group(1)):]
        return value


def _chain(first: Iterable[Any], rest: Iterator[Any]) -> Iterator[Any]:
    yield from first
    yield from rest


def _json_candidates(definition: str, column: str) -> list[Any]:
    """Objects a JSONB CHECK may accept: from the keys and literals it names, then a search
    with the fuzzing strategies (deterministic)."""
    from .strategies import analyse_checks

    shape = analyse_checks([definition], column)
    valid = {key: (k.literals[0] if k.literals else (k.bounds[0] if k.bounds else "x")) for key, k in shape.keys.items()}
    typed = {
        key: ({"string": "x", "number": 1, "boolean": True, "array": [], "object": {}}.get(next(iter(k.types)), "x")
              if k.types else valid[key])
        for key, k in shape.keys.items()
    }
    out: list[Any] = [valid, typed, {}]
    if "array" in shape.top_types:
        out.append([])
    return out


def _insert(rel: Relation, row: Mapping[str, Any]) -> tuple[sql.Composed, dict[str, Any]]:
    if not row:
        return sql.SQL("insert into {} as t default values returning to_jsonb(t)").format(rel.ident), {}
    cols = sql.SQL(", ").join(map(sql.Identifier, row))
    query = sql.SQL(
        "insert into {rel} as t ({cols}) select {cols} from jsonb_populate_record(null::{rel}, %(row)s::jsonb)"
        " returning to_jsonb(t)"
    ).format(rel=rel.ident, cols=cols)
    return query, {"row": json.dumps(dict(row), default=str)}


def _existing_sql(tables: Sequence[tuple[Relation, TenantKey]]) -> sql.Composable:
    """One row of each tenant in each table, in one query: ``(oid, tenant, row)``."""
    parts = [
        sql.SQL(
            "(select distinct on (1) ({key})::text, {oid}::int, to_jsonb(t) from {rel} t"
            " where ({key})::text = any(%(tenants)s::text[]))"
        ).format(key=key.sql(), oid=sql.Literal(rel.oid), rel=rel.ident)
        for rel, key in tables
    ]
    return sql.SQL(" union all ").join(parts)


@dataclass(frozen=True)
class _Model:
    """The tables to fill, their keys for it, the tenant root, and the root's key where the
    sweep should use it."""

    tables: Mapping[int, Relation]
    keys: dict[int, TenantKey | None]
    root: tuple[Relation, str] | None
    inferred: Mapping[int, TenantKey]


def _model(conn: psycopg.Connection[Any], catalog: Catalog, config: SweepConfig, api_roles: Sequence[str]) -> _Model | None:
    targets = [
        r for r in catalog.relations
        if r.kind in ("r", "p") and r.rls_enabled and r.policies
        and (r.schema not in ("auth", "storage") or r.qualified == STORAGE_OBJECTS)
        and any(g in (*api_roles, "public") for g, _ in r.grants)
    ]
    if not targets:
        return None
    tables = _closure(conn, catalog, targets)
    keys = {oid: find_tenant_key(rel, config) for oid, rel in tables.items()}
    root = _tenant_root(tables.values(), keys, tables)
    inferred: dict[int, TenantKey] = {}
    if root is not None:
        found = keys.get(root[0].oid)
        table = config.table(root[0].qualified)
        if found is None or (found.per_user and not (table.tenant_column or table.tenant_sql)):
            # the root's own key is its tenant, for the sweep too: not the user who created it
            inferred[root[0].oid] = TenantKey(root[1])
        keys[root[0].oid] = TenantKey(root[1])  # here, whatever its policies compare: a root row per tenant
    return _Model(tables, keys, root, inferred)


def plan(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    config: SweepConfig,
    configured: Sequence[Principal],
    names: Sequence[str],
    *,
    api_roles: Sequence[str] = ("anon", "authenticated"),
) -> tuple[Synthesis, bool]:
    """Without writing anything: the principals and keys the sweep would use, and whether
    anything must be made (no two configured principals, or a table without rows of one of
    their tenants)."""
    principals, named, made_users = plan_principals(configured, names)
    model = _model(conn, catalog, config, api_roles)
    if model is None:
        return Synthesis(tuple(principals), named), False
    nothing = Synthesis(tuple(principals), named, (), model.root[0].qualified if model.root else None,
                        keys=model.inferred)
    if made_users:
        return nothing, True
    keyed = [(rel, key) for oid, rel in model.tables.items() if (key := model.keys[oid]) is not None]
    owners = {str(p.sub) for p in principals} | {str(p.tenant) for p in principals if p.tenant is not None}
    try:
        with conn.transaction():  # a tenant_sql that does not run: said, and nothing made
            rows = conn.execute(_existing_sql(keyed), {"tenants": sorted(owners)}).fetchall()
    except psycopg.Error as exc:
        return replace(nothing, failed=f"{exc.sqlstate}: {(exc.diag.message_primary or str(exc)).strip()}"), False
    found = {(oid, tenant) for tenant, oid, _ in rows}
    for oid, key in ((rel.oid, key) for rel, key in keyed):
        for p in principals:
            owner = str(p.sub) if key.per_user else (str(p.tenant) if p.tenant is not None else None)
            if owner is not None and (oid, owner) not in found:
                return nothing, True
    return nothing, False


def synthesize(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    config: SweepConfig,
    configured: Sequence[Principal],
    names: Sequence[str],
    *,
    api_roles: Sequence[str] = ("anon", "authenticated"),
) -> Synthesis:
    """Make what the measured checks need on ``conn`` (as the owner, in the current
    transaction: the caller commits or rolls back) and say what was made. A statement the
    schema refuses (a sign-up trigger that needs what no test user has) is said, not raised."""
    try:
        with conn.transaction():
            return _synthesize(conn, catalog, config, configured, names, api_roles)
    except psycopg.Error as exc:
        why = f"{exc.sqlstate}: {(exc.diag.message_primary or str(exc)).strip()}"
        return Synthesis(tuple(configured), {str(p.sub): n for p, n in zip(configured, names)}, failed=why)
    except SignUpFailed as exc:  # the users could not be made as Supabase Auth makes them
        why = f"{exc.sqlstate}: {str(exc).splitlines()[0]}" + (f" ({exc.origin})" if exc.origin else "")
        return Synthesis(tuple(configured), {str(p.sub): n for p, n in zip(configured, names)}, failed=why)


def _synthesize(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    config: SweepConfig,
    configured: Sequence[Principal],
    names: Sequence[str],
    api_roles: Sequence[str],
) -> Synthesis:
    principals, named, made_users = plan_principals(configured, names)
    have_users = conn.execute("select to_regclass('auth.users') is not null").fetchone() == (True,)
    model = _model(conn, catalog, config, api_roles)
    if model is None:
        return Synthesis(tuple(principals), named)
    tables, keys, root, inferred = model.tables, model.keys, model.root, model.inferred
    ordered = _order(tables)
    type_rows = conn.execute(TYPES_SQL, {"oids": sorted(tables)}).fetchall()
    types = _Types({(oid, name): (base, cat, tuple(labels)) for oid, name, base, cat, labels in type_rows})
    maker = _Maker(conn, types, _strings(catalog))
    if made_users and have_users:
        for p in principals:
            # signed up as Supabase Auth does (its role, its search_path): a sign-up trigger
            # that fails in production fails here (SignUpFailed says how)
            auth_users.create(conn, p.email, user_id=p.sub)
    rows: Counter[str] = Counter()
    skipped: dict[str, str] = {}
    mine: dict[tuple[int, str], dict[str, Any]] = {}  # (table, sub) -> the principal's row there
    context = _Context(conn, tables, keys, root, maker, named, mine, rows, skipped)
    if made_users:
        principals = _tenants(context, principals, types)
    tenant_of = {str(p.sub): str(p.tenant) if p.tenant is not None else None for p in principals}
    # what exists already (the seed's, and what the users' triggers made): one row per tenant
    # (or user) per table; read again table by table once this has written anything
    keyed = [(rel, key) for rel in ordered if (key := keys[rel.oid]) is not None]
    wanted = sorted({t for t in tenant_of.values() if t} | set(tenant_of))
    existing: dict[tuple[int, str], dict[str, Any]] = {}
    if keyed:
        for tenant, oid, row in conn.execute(_existing_sql(keyed), {"tenants": wanted}).fetchall():
            existing[(oid, tenant)] = row
    dirty = bool(rows)
    for rel in ordered:
        key = keys[rel.oid]
        if dirty and key is not None:
            for tenant, oid, row in conn.execute(_existing_sql([(rel, key)]), {"tenants": wanted}).fetchall():
                existing[(oid, tenant)] = row
        for p in principals:
            if (rel.oid, str(p.sub)) in mine:
                continue  # the tenant's root row, found or made already
            owner = str(p.sub) if key is not None and key.per_user else tenant_of[str(p.sub)]
            found = existing.get((rel.oid, owner)) if owner is not None else None
            if found is None and key is None and rel.estimated_rows >= 1:
                found = conn.execute(sql.SQL("select to_jsonb(t) from {} t limit 1").format(rel.ident)).fetchone()
                found = found[0] if found else None
            if found is not None:
                mine[(rel.oid, str(p.sub))] = found
                continue
            if key is None and (rel.oid, "*") in mine:
                mine[(rel.oid, str(p.sub))] = mine[(rel.oid, "*")]
                continue
            made = _make(context, rel, p, tenant_of[str(p.sub)], owner)
            dirty = dirty or made is not None
            if made is not None and key is None:
                mine[(rel.oid, "*")] = made
    return Synthesis(
        tuple(principals),
        named,
        tuple(named[str(p.sub)] for p in principals) if made_users else (),
        root[0].qualified if root else None,
        dict(rows),
        skipped,
        inferred,
    )


@dataclass
class _Context:
    conn: psycopg.Connection[Any]
    tables: Mapping[int, Relation]
    keys: Mapping[int, TenantKey | None]
    root: tuple[Relation, str] | None
    maker: _Maker
    named: Mapping[str, str]
    mine: dict[tuple[int, str], dict[str, Any]]
    rows: Counter[str]
    skipped: dict[str, str]


def _make(ctx: _Context, rel: Relation, p: Principal, tenant: str | None, owner: str | None) -> dict[str, Any] | None:
    """Insert the principal's row(s) into ``rel``, as the principal; the (last) row made."""
    key = ctx.keys[rel.oid]
    user_columns = _user_columns(rel, ctx.tables)
    # a membership: a user, and a tenant (by the tenant column, or a foreign key to the root)
    links_root = ctx.root is not None and any(fk.referenced_oid == ctx.root[0].oid for fk in rel.foreign_keys())
    membership = bool(user_columns) and rel.oid != (ctx.root[0].oid if ctx.root else None) and (
        links_root or (key is not None and not key.per_user and bool(key.column)))
    row, why = _row_for(rel, p, tenant, key, ctx.root, user_columns, ctx.tables, ctx.mine, ctx.maker, membership)
    if row is None:
        ctx.skipped.setdefault(rel.qualified, why)
        return None
    extras: list[dict[str, Any]] = [{}]
    if rel.qualified == STORAGE_OBJECTS:
        extras = _objects(ctx.conn, p, owner, key, ctx.rows)
    last = None
    for extra in extras:
        ctx.conn.execute(CLAIMS_SQL, {"claims": json.dumps({"sub": str(p.sub), "role": p.role, "aud": "authenticated",
                                                            "email": p.email})})
        try:
            made, why = ctx.maker.insert(rel, {**row, **extra}, membership, f"{rel.qualified}/{_label(ctx.named, p)}")
        finally:
            ctx.conn.execute(CLEAR_CLAIMS_SQL)
        if made is None:
            ctx.skipped.setdefault(rel.qualified, why)
            continue
        ctx.rows[rel.qualified] += 1
        ctx.mine[(rel.oid, str(p.sub))] = last = made
    return last


def _tenants(ctx: _Context, principals: list[Principal], types: _Types) -> list[Principal]:
    """Each synthesized principal's tenant: the root row their sign-up made (a trigger on
    auth.users creating a personal account and its membership), else a root row made now
    (its key as the database gave it: an identity, a default), else — without a root — a
    fresh value of the tenant columns' type."""
    if ctx.root is None:
        return _with_tenants(principals, None, types, ctx.tables, ctx.keys)
    root, column = ctx.root
    out = []
    for i, p in enumerate(principals):
        found = _signed_up_tenant(ctx, p)
        if found is None:
            planned = _with_tenants([p], ctx.root, types, ctx.tables, ctx.keys, offset=i)[0].tenant
            made = _make(ctx, root, p, planned, planned)
            found = None if made is None or made.get(column) is None else str(made[column])
        else:
            ctx.mine[(root.oid, str(p.sub))] = found[1]
            found = found[0]
        out.append(Principal(p.sub, found, p.role, p.claims, p.email))
    return out


def _signed_up_tenant(ctx: _Context, p: Principal) -> tuple[str, dict[str, Any]] | None:
    """A root row of the user's made by their sign-up: through a membership row (a user
    column and a foreign key to the root), or the root's own user column."""
    assert ctx.root is not None
    root, column = ctx.root
    sources: list[sql.Composable] = []
    for rel in ctx.tables.values():
        users = _user_columns(rel, ctx.tables)
        if not users:
            continue
        if rel.oid == root.oid:
            for user in sorted(users):
                sources.append(sql.SQL("select r.{col}::text from {root} r where r.{user}::text = %(sub)s").format(
                    col=sql.Identifier(column), root=root.ident, user=sql.Identifier(user)))
            continue
        for fk in rel.foreign_keys():
            if fk.referenced_oid == root.oid and column in fk.referenced_columns:
                local = fk.columns[fk.referenced_columns.index(column)]
                for user in sorted(users - {local}):
                    sources.append(sql.SQL("select m.{local}::text from {rel} m where m.{user}::text = %(sub)s").format(
                        local=sql.Identifier(local), rel=rel.ident, user=sql.Identifier(user)))
    if not sources:
        return None
    query = sql.SQL("select to_jsonb(r), r.{col}::text from {root} r where r.{col}::text in ({sources}) limit 1").format(
        col=sql.Identifier(column), root=root.ident, sources=sql.SQL(" union ").join(sources))
    found = ctx.conn.execute(query, {"sub": str(p.sub)}).fetchone()
    return (found[1], found[0]) if found else None


def _objects(conn: psycopg.Connection[Any], p: Principal, owner: str | None, key: TenantKey | None,
             rows: Counter[str]) -> list[dict[str, Any]]:
    """A stored object of the principal in every bucket, where storage's conventions put it:
    under a folder named for the user (or tenant) the policies compare, with the user as its
    owner (as the storage API sets it on upload)."""
    buckets = [b for (b,) in conn.execute(BUCKETS_SQL).fetchall()]
    if not buckets:
        conn.execute(CREATE_BUCKET_SQL)
        rows["storage.buckets"] += 1
        buckets = ["rlscheck"]
    depth = 1
    if key is not None and key.expression:
        found = _INDEX.search(key.expression)
        depth = int(found.group(1)) if found else 1
    folder = owner or str(p.sub)
    path = "/".join(["rlscheck"] * (depth - 1) + [folder, "rlscheck.txt"])
    return [{"bucket_id": b, "name": path, "owner": str(p.sub), "owner_id": str(p.sub)} for b in buckets]


def _label(named: Mapping[str, str], p: Principal) -> str:
    return named.get(str(p.sub), str(p.sub)[:8])


def _with_tenants(principals: list[Principal], root: tuple[Relation, str] | None, types: _Types,
                  tables: Mapping[int, Relation], keys: Mapping[int, TenantKey | None], offset: int = 0) -> list[Principal]:
    """Synthesized principals' tenants: values of the root's key (or of the tenant columns)."""
    column: tuple[Relation, Column] | None = None
    if root is not None:
        col = root[0].column(root[1])
        column = (root[0], col) if col is not None else None
    else:
        for oid, key in keys.items():
            if key is not None and key.column and not key.per_user:
                col = tables[oid].column(key.column)
                if col is not None:
                    column = (tables[oid], col)
                    break
    if column is None:
        return principals
    rel, col = column
    base, category, labels = types.of(rel, col)
    out = []
    for i, p in enumerate(principals, offset):
        value = _value(base, category, labels, col.name, f"tenant/{SYNTHESIZED[i % 2]}", 9000 + i, False)
        out.append(Principal(p.sub, None if value is None else str(value), p.role, p.claims, p.email))
    return out


def _user_columns(rel: Relation, tables: Mapping[int, Relation]) -> set[str]:
    """Columns that hold a user: a foreign key to auth.users, or compared with auth.uid()."""
    found = {
        c for fk in rel.foreign_keys() if _is_auth_users(fk, tables)
        for c in fk.columns
    }
    for policy in rel.policies:
        for _, _, facts in policy.clauses():
            found |= set(facts.compared_with_user())
    return found


def _is_auth_users(fk: Constraint, tables: Mapping[int, Relation]) -> bool:
    return fk.referenced_oid not in tables and fk.to_auth_users


USERS_ROW_SQL = "select to_jsonb(t) from {rel} t where {column}::text = %(sub)s limit 1"


def _users_row(conn: psycopg.Connection[Any], parent: Relation, sub: str, tables: Mapping[int, Relation]
               ) -> dict[str, Any] | None:
    """The user's own row of a per-user table that something else made (a profile the sign-up
    trigger inserted): keyed by its user, through its primary key or a column that points
    at auth.users."""
    columns = [fk.columns[0] for fk in parent.foreign_keys() if len(fk.columns) == 1 and _is_auth_users(fk, tables)]
    for column in dict.fromkeys(columns):
        query = sql.SQL(USERS_ROW_SQL).format(rel=parent.ident, column=sql.Identifier(column))
        try:
            with conn.transaction():
                row = conn.execute(query, {"sub": sub}).fetchone()
        except psycopg.Error:
            return None
        if row is not None:
            return row[0]
    return None


def _row_for(
    rel: Relation,
    p: Principal,
    tenant: str | None,
    key: TenantKey | None,
    root: tuple[Relation, str] | None,
    user_columns: set[str],
    tables: Mapping[int, Relation],
    mine: Mapping[tuple[int, str], Mapping[str, Any]],
    maker: _Maker,
    membership: bool,
) -> tuple[dict[str, Any] | None, str]:
    """The row to try first for ``p`` in ``rel``, or why there is none."""
    row: dict[str, Any] = {}
    sub = str(p.sub)
    for fk in rel.foreign_keys():
        parent = tables.get(fk.referenced_oid or 0)
        if _is_auth_users(fk, tables):
            for c in fk.columns:
                row[c] = sub
            continue
        if parent is None or parent.oid == rel.oid:
            continue
        theirs = mine.get((parent.oid, sub)) or _users_row(maker.conn, parent, sub, tables)
        if theirs is None:
            if any((rel.column(c) and rel.column(c).not_null) for c in fk.columns):  # type: ignore[union-attr]
                return None, f"no row of {parent.qualified} for {tenant or sub} to point {', '.join(fk.columns)} at"
            continue
        for c, r in zip(fk.columns, fk.referenced_columns):
            if c not in row or c == (key.column if key else None):
                row[c] = theirs.get(r)
    from_parents = set(row)
    for c in user_columns:
        row[c] = sub
    if key is not None and key.column and (key.per_user or key.column not in from_parents or row[key.column] is None):
        row[key.column] = sub if key.per_user else tenant
    if root is not None and rel.oid == root[0].oid and tenant is not None:
        row[root[1]] = tenant
    if membership:  # the role that lets the user act on their tenant's rows, over the default
        for column in rel.columns:
            if column.name in row or column.generated or column.identity:
                continue
            _, _, labels = maker.types.of(rel, column)
            allowed = list(labels) or [v for c in rel.checks() if c.columns == (column.name,)
                                       for v in _literals(c.definition) if isinstance(v, str)]
            ranked = [v for v in _preferred(allowed, True, maker.strings) if v.lower() in PRIVILEGED]
            if ranked:
                row[column.name] = ranked[0]
    for column in rel.columns:
        if column.name in row or column.generated or column.identity or column.has_default or not column.not_null:
            continue
        maker.counter += 1
        value = maker.value_for(rel, column, f"{rel.qualified}/{sub[:8]}", membership)
        if value is None:
            return None, f"no value of type {column.type} for {column.name}"
        row[column.name] = value
    return {k: v for k, v in row.items() if not (rel.column(k) and (rel.column(k).generated or rel.column(k).identity))}, ""  # type: ignore[union-attr]
