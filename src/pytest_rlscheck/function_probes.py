"""Functions called, and triggers fired, with another tenant's ids: what came back and what
changed.

**Calls.** A function the API can call that takes a user or tenant id is called as a user
(and as anon) with the OTHER principal's ids: their ``sub`` for a user id, their tenant for a
tenant id. Other parameters keep their DEFAULT where they have one; a parameter that names a
column (``p_conversation_id``: ``conversations.id``, or a column ``conversation_id``) gets a
value of that column from the other tenant's rows (read with the owner's rights); the rest a
plain value of their type. What the call returns is judged on the server (no row travels to
Python): rows that hold the other tenant's id, or, for an answer without ids (a count, a
flag), the same non-empty answer the owner gets for those ids. What it changes is measured
with :mod:`pytest_rlscheck.effects` (for VOLATILE functions: the others cannot write).

**Writes.** A table with a SECURITY DEFINER trigger is written as a user (INSERT, UPDATE of
an own row) with each column the user may set that holds a user id, a tenant id or a stored
object's path set to the other's value; the effects of the statement, minus the row it wrote
itself, are what the trigger did with its owner's rights.

Every attempt runs in a savepoint that is rolled back, in one round trip.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from .catalog import Catalog, Function, Relation
from .config import SweepConfig
from .effects import Change, Scope, diff
from .function_body import touches
from .impersonation import OWNER, Identity, Principal
from .rows import base_row, insert_statement, sample_row, to_json
from .scratch import OWNER_SQL, bind, identity_sql, rolled_back
from .tenancy import TenantKey, find_tenant_key

if TYPE_CHECKING:
    from .protocol import RlsProtocol as Rls

__all__ = [
    "Argument",
    "Attempt",
    "ROW_ID",
    "TENANT_ID",
    "USER_ID",
    "call_function",
    "function_arguments",
    "id_columns",
    "id_kind",
    "row_table",
    "write_attempts",
]

USER_ID = "user"
TENANT_ID = "tenant"
ROW_ID = "row"  # the id of one of a tenant's rows: sampled from the other tenant's
#: Names that say a value is a user's id, and names that say it is a tenant's.
_USER_NAMES = re.compile(
    r"(^|_)(user|uid|owner|member|profile|admin|actor|caller|requester|author|creator|invitee|inviter|sender"
    r"|recipient|assignee)(_?id)?s?$",
    re.IGNORECASE,
)
_TENANT_NAMES = re.compile(r"(^|_)(tenant|org|organization|organisation|team|workspace|account|company)(_?id)?s?$", re.IGNORECASE)
_PATH_NAMES = re.compile(r"(^|_)(path|file|filename|object|storage_key|object_key|object_name)s?$", re.IGNORECASE)
_BUCKET_NAMES = re.compile(r"(^|_)bucket(_?id)?$", re.IGNORECASE)
_PREFIX = re.compile(r"^(p|in|arg|param|v|i)_+|^_+", re.IGNORECASE)
_ID_OF = re.compile(r"^(\w+?)_?id$", re.IGNORECASE)
NIL_UUID = "00000000-0000-0000-0000-000000000000"
#: SQLSTATEs that are the schema refusing: insufficient privilege / RLS, and RAISE EXCEPTION.
REFUSED = ("42501", "P0001", "P0002", "P0004")  # privileges or RLS; RAISE, no data found, ASSERT
#: A value for an id parameter that belongs to nobody, by type (uuid: a fresh one).
_NOBODY = {
    "text": "rlscheck-nobody", "character varying": "rlscheck-nobody", "citext": "rlscheck-nobody",
    "name": "rlscheck-nobody", "integer": "-2147483647", "bigint": "-9223372036854775807", "smallint": "-32767",
    "numeric": "-9223372036854775807",
}
#: A value for a parameter nothing else fills, by type (as text, cast to the type).
_PLAIN = {
    "text": "rlscheck", "character varying": "rlscheck", "citext": "rlscheck", "name": "rlscheck", "character": "r",
    "integer": "1", "bigint": "1", "smallint": "1", "numeric": "1", "real": "1", "double precision": "1",
    "boolean": "false", "uuid": NIL_UUID, "jsonb": "{}", "json": "{}", "date": "today",
    "timestamp with time zone": "now", "timestamp without time zone": "now",
}

#: What a call returned, judged on the server: rows, rows holding the other tenant's id in a
#: column (``%(theirs)s``; a bare value that only echoes an argument, ``%(inputs)s``, does not count),
#: rows that say anything (not null, false, 0, '', [] or {}, nor an echo, nor a row whose values
#: are all of those), and a checksum.
RESULT_SQL = """
select count(*),
       count(*) filter (where case when jsonb_typeof(j) = 'object'
                                   then jsonb_path_exists(j, '$.* ? (@ == $t)', jsonb_build_object('t', %(theirs)s::text))
                                   else j #>> '{{}}' = %(theirs)s::text and j #>> '{{}}' <> all(%(inputs)s::text[]) end),
       count(*) filter (where not (j is null or j in ('null', 'false', '0', '""', '[]', '{{}}')
                                   or (jsonb_typeof(j) <> 'object' and j #>> '{{}}' = any(%(inputs)s::text[]))
                                   or (jsonb_typeof(j) = 'object' and not exists (
                                         select from jsonb_each(j) e
                                         where e.value not in ('null', 'false', '0', '""', '[]', '{{}}'))))),
       coalesce(sum(hashtext(j::text)::bigint), 0)::bigint
from (select to_jsonb(r) as j from {call} as r) s
"""
VOID_SQL = "select count(*), 0, 0, 0::bigint from (select {call}) s"
STORAGE_OBJECT_SQL = (
    "select o.bucket_id, o.name from storage.objects o where coalesce(o.owner::text, o.owner_id) = %s "
    "order by o.name limit 1"
)
ADDRESS_SQL = "select t.tableoid::text || ':' || t.ctid::text from {rel} t where ({key})::text = %(mine)s limit 1"


@dataclass(frozen=True)
class Argument:
    """One argument of a call: the value sent (as text, cast to the type) and where it came from."""

    name: str
    type: str
    value: str | None
    source: str
    named: bool = False  # passed as ``name => value`` (a DEFAULTed parameter after the positional ones)

    def sql(self) -> sql.Composable:
        value = sql.SQL("null") if self.value is None else sql.Literal(self.value)
        cast = sql.SQL("{}::{}").format(value, sql.SQL(self.type))
        return sql.SQL("{} => {}").format(sql.Identifier(self.name), cast) if self.named else cast


@dataclass(frozen=True)
class Attempt:
    """One call (or write) as one caller, and what it did to the other's data."""

    caller: str  # "user <sub>" or "anon"
    statement: str  # the SQL sent, as one could paste it
    error: str | None = None
    rows: int = 0  # rows (or values) returned
    theirs: int = 0  # returned rows holding the other tenant's id
    same_as_owner: bool = False  # a non-empty answer, and the owner's for the same ids
    changes: tuple[Change, ...] = ()  # the other's rows the statement changed
    trigger: str = ""  # for a write: the triggers it fired

    @property
    def leaked(self) -> bool:
        return self.error is None and bool(self.theirs or self.same_as_owner or self.changes)

    @property
    def refused(self) -> bool:
        """The schema refused it: privileges or RLS (42501), or a RAISE of the function or trigger (P0001; P0002
        no data found; P0004 an ASSERT)."""
        return self.error is not None and self.error.startswith(REFUSED)

    @property
    def failed(self) -> bool:
        """It errored for another reason (a plain value rejected, a constraint, the effects query):
        it proves nothing either way."""
        return self.error is not None and not self.refused

    @property
    def answer_only(self) -> bool:
        """Its only leak is an answer equal to the owner's (no row of theirs, nothing changed)."""
        return self.leaked and not self.theirs and not self.changes

    def describe(self, who: str | None = None, given: str = "") -> str:
        """``as <caller>: <statement> -> what of theirs it returned or changed``; with ``who``
        (a principal's name) and ``given`` (whose values it was called with): ``called as
        alice with bob's ...: ...``."""
        found = []
        if self.theirs:
            found.append(f"returned {self.theirs} of {self.rows} row(s) holding the other tenant's id")
        elif self.same_as_owner:
            found.append(f"returned the same answer ({self.rows} row(s)) the owner gets for the other tenant's ids")
        if self.changes:
            found.append("changed " + "; ".join(c.describe() for c in self.changes))
        lead = f"as {self.caller}" if who is None else f"called as {who}" + (f" with {given}" if given else "")
        return f"{lead}: {self.statement} -> " + ", and ".join(found or ["nothing of theirs"])


# -- which parameters and columns are ids --------------------------------------------------


def id_kind(name: str, *, user_columns: Iterable[str] = (), tenant_columns: Iterable[str] = ()) -> str | None:
    """``"user"`` or ``"tenant"`` for a parameter or column named for a user or a tenant
    (``p_user_id``, ``_org_id``), or for a column the policies compare with the user / with a
    set of tenants; None otherwise."""
    bare = _PREFIX.sub("", name).lower()
    if bare in {c.lower() for c in user_columns} or _USER_NAMES.search(bare):
        return USER_ID
    if bare in {c.lower() for c in tenant_columns} or _TENANT_NAMES.search(bare):
        return TENANT_ID
    return None


def id_columns(catalog: Catalog, schemas: Sequence[str], config: SweepConfig | None) -> tuple[set[str], set[str]]:
    """Column names that hold a user id (compared with ``auth.uid()``, a per-user table's
    owner) and a tenant id (a tenant key, a column compared with a set of tenants), from the
    tables of ``schemas``."""
    users: set[str] = set()
    tenants: set[str] = set()
    for rel in catalog.relations:
        if rel.kind not in ("r", "p") or rel.schema not in schemas:
            continue
        key = find_tenant_key(rel, config)
        if key is not None and key.column and key.column != "id":
            (users if key.per_user else tenants).add(key.column)
        for policy in rel.policies:
            for _, _, facts in policy.clauses():
                users |= set(facts.compared_with_user())
                tenants |= set(facts.set_columns)
    return users - {"id"}, tenants - users - {"id"}


def _value_for(kind: str, other: Principal) -> str | None:
    return str(other.sub) if kind == USER_ID else (None if other.tenant is None else str(other.tenant))


def _as_type(value: str, type_: str) -> str:
    return "{" + value + "}" if type_.endswith("[]") else value


# -- calls ---------------------------------------------------------------------------------


def function_arguments(
    rls: Rls,
    catalog: Catalog,
    schemas: Sequence[str],
    fn: Function,
    ids: Mapping[str, str],
    other: Principal,
    config: SweepConfig | None = None,
) -> list[Argument]:
    """The arguments to call ``fn`` with: ``ids`` (parameter name -> "user"/"tenant") get
    ``other``'s ids, the rest their DEFAULT, a value of the column they name from ``other``'s
    rows, or a plain value of their type. One query (as the owner) for all the sampled ones."""
    names = list(fn.argument_names) + [""] * (len(fn.argument_types) - len(fn.argument_names))
    required = len(fn.argument_types) - fn.defaults
    args: list[Argument | None] = []
    samples: list[tuple[int, sql.Composable, str]] = []
    for i, (name, type_) in enumerate(zip(names, fn.argument_types, strict=False)):
        if name in ids and ids[name] != ROW_ID and _value_for(ids[name], other) is not None and _id_type(type_):
            value = _as_type(_value_for(ids[name], other) or "", type_)
            whose = "their user id" if ids[name] == USER_ID else "their tenant"
            if i < required:
                args.append(Argument(name, type_, value, whose))
            elif name:
                args.append(Argument(name, type_, value, whose, named=True))
            continue
        if i >= required:
            continue  # its DEFAULT
        sampled = _sample_for(catalog, schemas, fn, name, type_, other, config)
        if sampled is not None:
            samples.append((len(args), *sampled))
        args.append(Argument(name, type_, _PLAIN.get(type_.split("(")[0], "{}" if type_.endswith("[]") else None), "a plain value"))
    if samples:
        query = sql.SQL("select {}").format(sql.SQL(", ").join(q for _, q, _ in samples))
        row = rls.owner_fetchall(query)[0]
        for (index, _, source), value in zip(samples, row, strict=True):
            if value is not None:
                old = args[index]
                assert old is not None
                args[index] = Argument(old.name, old.type, _as_type(str(value), old.type), source)
    return [a for a in args if a is not None]


def _keyed(catalog: Catalog, schemas: Sequence[str], config: SweepConfig | None) -> list[tuple[Relation, TenantKey]]:
    tables = [r for r in catalog.relations if r.kind in ("r", "p") and r.schema in schemas]
    return [(r, k) for r in tables for k in [find_tenant_key(r, config)] if k is not None and k.column]


def row_table(
    catalog: Catalog, schemas: Sequence[str], fn: Function, name: str, config: SweepConfig | None
) -> tuple[Relation, TenantKey] | None:
    """The table whose row ids the parameter ``name`` takes: ``p_conversation_id`` a
    ``conversations`` (or ``conversation``) row's, ``id`` a row of the table the function
    returns; a table with a tenant key and a primary key ``id``."""
    bare = _PREFIX.sub("", name).lower()
    returned = fn.result.removeprefix("SETOF ").strip()
    of = _ID_OF.match(bare)
    keyed = _keyed(catalog, schemas, config)
    for rel, key in keyed:
        if rel.primary_key != ("id",):
            continue
        if bare == "id" and returned in (rel.name, rel.qualified):
            return rel, key
        if of and bare != "id" and rel.name.lower() in (of.group(1), of.group(1) + "s", of.group(1) + "es"):
            return rel, key
    # the table whose primary key the body's write compares it with (``where id = p_id``)
    compared = touches(fn, catalog).compared_columns(name.lower())
    for rel, key in keyed:
        if len(rel.primary_key) == 1 and (rel.qualified.lower(), rel.primary_key[0].lower()) in compared:
            return rel, key
    return None


def _sample_for(
    catalog: Catalog, schemas: Sequence[str], fn: Function, name: str, type_: str, other: Principal,
    config: SweepConfig | None,
) -> tuple[sql.Composable, str] | None:
    """A scalar subquery for a value of the column ``name`` names, from ``other``'s rows (a
    column of the parameter's type: ``_role app_role`` takes no ``team_members.role team_role``)."""
    bare = _PREFIX.sub("", name).lower()
    if not bare:
        return None
    wanted: list[tuple[Relation, TenantKey, str]] = []
    table = row_table(catalog, schemas, fn, name, config)
    if table is not None:
        wanted.append((*table, table[0].primary_key[0]))
    wanted += [(r, k, bare) for r, k in _keyed(catalog, schemas, config) if bare != "id" and r.column(bare) and bare != k.column]
    for rel, key, column in wanted:
        found = rel.column(column)
        if found is None or not _same_type(found.type, type_):
            continue
        theirs = str(other.sub) if key.per_user else other.tenant
        if theirs is None:
            continue
        query = sql.SQL("(select t.{}::text from {} t where ({})::text = {} limit 1)").format(
            sql.Identifier(column), rel.ident, key.sql(), sql.Literal(theirs)
        )
        return query, f"{rel.qualified}.{column} of theirs"
    return None


def _same_type(a: str, b: str) -> bool:
    """Two types as format_type prints them, schema qualification and typmods aside."""
    def bare(t: str) -> str:
        return t.split("(")[0].rsplit(".", 1)[-1].strip('"').strip().lower()

    return bare(a) == bare(b)


#: the types an id is stored in: a boolean named ``personal_account`` is no account id
ID_TYPES = ("uuid", "text", "character varying", "citext", "bigint", "integer", "smallint")


def _id_type(type_: str) -> bool:
    return type_.split("(")[0].strip().lower() in ID_TYPES


def _from_them(argument: Argument) -> bool:
    return argument.source in ("their user id", "their tenant") or argument.source.endswith(" of theirs")


def _nobody_value(type_: str) -> str | None:
    base = type_.split("(")[0].removesuffix("[]")
    value = str(uuid.uuid4()) if base == "uuid" else _NOBODY.get(base)
    return None if value is None else _as_type(value, type_)


def _nobody_arguments(args: Sequence[Argument]) -> list[Argument] | None:
    """``args`` with each value taken from the other tenant (their ids, their rows' values)
    replaced by one that belongs to nobody (a fresh uuid, a negative number); None when some
    type has no such value or nothing came from them."""
    out = []
    for a in args:
        if not _from_them(a):
            out.append(a)
            continue
        value = _nobody_value(a.type)
        if value is None:
            return None
        out.append(Argument(a.name, a.type, value, "nobody's", a.named))
    return out if any(_from_them(a) for a in args) else None


def call_expression(fn: Function, args: Sequence[Argument]) -> sql.Composable:
    return sql.SQL("{}({})").format(sql.Identifier(fn.schema, fn.name), sql.SQL(", ").join(a.sql() for a in args))


def call_function(
    rls: Rls,
    fn: Function,
    args: Sequence[Argument],
    identity: Identity,
    other: Principal,
    *,
    caller: str,
    scope: Scope | None = None,
    judge_answer: bool = True,
) -> Attempt:
    """Call ``fn`` with ``args`` as ``identity`` in a rolled-back savepoint: what it returned
    of ``other``'s, and (with ``scope``, for a function that can write) what of theirs it
    changed. ``judge_answer``: an answer without ids counts when it is the owner's (for a
    tenant id; a user's public data is often readable by design)."""
    conn = rls.connection
    expression = call_expression(fn, args)
    shown = (sql.SQL("select {}") if fn.result == "void" else sql.SQL("select * from {}")).format(expression).as_string(conn)
    query = sql.SQL(VOID_SQL if fn.result == "void" else RESULT_SQL).format(call=expression)
    params = {"theirs": None if other.tenant is None else str(other.tenant), "inputs": [a.value for a in args if a.value]}
    measured = bind(conn, query, params)
    statements = [identity_sql(conn, identity, rls.settings_in_effect()), measured]
    if scope is not None:
        statements = [OWNER_SQL, scope.query(conn), *statements, OWNER_SQL, scope.query(conn)]
    try:
        results = rolled_back(conn, statements)
    except psycopg.Error as exc:
        error = f"{exc.sqlstate}: {exc.diag.message_primary}"
        if scope is not None and not error.startswith(REFUSED):
            try:  # was it the call, or measuring what it changed?
                rolled_back(conn, [OWNER_SQL, scope.query(conn)])
            except psycopg.Error as effects:
                error = f"{effects.sqlstate}: measuring its effects failed: {effects.diag.message_primary}"
        return Attempt(caller, shown, error=error)
    rows, theirs, meaningful, checksum = results[3 if scope is not None else 1].rows[0]  # type: ignore[index]
    changes: tuple[Change, ...] = ()
    if scope is not None:
        changes = tuple(
            c for c in diff(scope.read(results[1].rows), scope.read(results[-1].rows))
            if c.belongs_to(tenant=other.tenant, user=other.sub)
        )
    same = False
    if not theirs and meaningful and judge_answer and fn.result != "void":
        as_owner = identity_sql(conn, OWNER, rls.settings_in_effect() | set(identity.settings))
        answer = (rows, theirs, meaningful, checksum)
        try:
            owner = rolled_back(conn, [as_owner, measured])
            same = tuple(owner[-1].rows[0]) == answer  # type: ignore[index]
        except psycopg.Error:
            same = False  # the owner is refused too (the function asks who calls)
        nobody = _nobody_arguments(args) if same else None
        if nobody is not None:
            # the owner's answer for ids that belong to nobody: when it is the same, the answer
            # does not depend on the other tenant's ids (it carries nothing of theirs)
            params_nobody = {**params, "inputs": [a.value for a in nobody if a.value]}
            query_nobody = sql.SQL(RESULT_SQL).format(call=call_expression(fn, nobody))
            try:
                owner = rolled_back(conn, [as_owner, bind(conn, query_nobody, params_nobody)])
                same = tuple(owner[-1].rows[0]) != answer  # type: ignore[index]
            except psycopg.Error:
                pass  # raises for an id of nobody's, answers for theirs: the answer depends on it
    return Attempt(caller, shown, rows=rows, theirs=theirs, same_as_owner=same, changes=changes)


# -- writes that fire triggers -------------------------------------------------------------


def write_columns(
    rel: Relation, key: TenantKey | None, user_columns: Iterable[str], tenant_columns: Iterable[str], config: SweepConfig | None,
    catalog: Catalog, *, storage: bool,
) -> dict[str, str]:
    """The columns of ``rel`` a user may set that hold a user id, a tenant id or (with
    ``storage``) a stored object's path or bucket: column -> "user", "tenant", "path", "bucket".
    A foreign key to ``auth.users`` is a user id; one to a table whose tenant key is its own
    ``id`` (the tenant root) a tenant id."""
    roots = {r.qualified for r in catalog.relations if (k := find_tenant_key(r, config)) is not None and k.column == "id"}
    keyed = {r.oid for r in catalog.relations if r.oid != rel.oid and find_tenant_key(r, config) is not None}
    found: dict[str, str] = {}
    for fk in (c for c in rel.constraints if c.type == "f" and len(c.columns) == 1):
        ref = (fk.references or "").replace('"', "")
        ref = ref if "." in ref else f"public.{ref}"
        if fk.to_auth_users:
            found[fk.columns[0]] = USER_ID
        elif ref in roots:
            found[fk.columns[0]] = TENANT_ID
        elif fk.referenced_oid in keyed and fk.referenced_columns:
            # one of a tenant's rows (a ticket id): set to one of theirs, what does the trigger do to it?
            found[fk.columns[0]] = f"{ROW_ID} {fk.referenced_oid} {fk.referenced_columns[0]}"
    for column in rel.columns:
        if column.generated or column.identity or column.name in found or column.name in rel.primary_key:
            continue
        kind = id_kind(column.name, user_columns=user_columns, tenant_columns=tenant_columns)
        if kind is not None and _id_type(column.type):
            found[column.name] = kind
        elif storage and column.type.startswith(("text", "character varying")):
            if _PATH_NAMES.search(column.name):
                found[column.name] = "path"
            elif _BUCKET_NAMES.search(column.name):
                found[column.name] = "bucket"
    if key is not None and key.column and key.column not in rel.primary_key:  # a root's own key stays fresh
        found.setdefault(key.column, USER_ID if key.per_user else TENANT_ID)
    return found


@dataclass(frozen=True)
class _Values:
    user: str
    tenant: str | None
    bucket: str | None = None
    path: str | None = None

    rows: Mapping[str, str | None] = field(default_factory=dict)  # "row <oid> <column>" -> one of theirs

    def of(self, kind: str) -> str | None:
        if kind.startswith(f"{ROW_ID} "):
            return self.rows.get(kind)
        return {USER_ID: self.user, TENANT_ID: self.tenant, "path": self.path, "bucket": self.bucket}[kind]


THEIR_ROW_SQL = "select t.{column}::text from {rel} t where ({key})::text = %(theirs)s limit 1"


def _their_rows(rls: Rls, kinds: Iterable[str], other: Principal, config: SweepConfig | None) -> dict[str, str | None]:
    """For each "row <oid> <column>" kind: ``column`` of one of ``other``'s rows of that table
    (by its tenant key), read with the owner's rights."""
    out: dict[str, str | None] = {}
    for kind in {k for k in kinds if k.startswith(f"{ROW_ID} ")}:
        _, oid, column = kind.split(" ", 2)
        try:
            target = next(r for r in Catalog.load(rls.connection, oids=[int(oid)]).relations if r.oid == int(oid))
        except StopIteration:
            continue
        key = find_tenant_key(target, config)
        theirs = None if key is None else (str(other.sub) if key.per_user else other.tenant)
        if key is None or theirs is None:
            continue
        query = sql.SQL(THEIR_ROW_SQL).format(column=sql.Identifier(column), rel=target.ident, key=key.sql())
        rows = rls.owner_fetchall(query, {"theirs": str(theirs)})
        out[kind] = rows[0][0] if rows else None
    return out


def write_attempts(
    rls: Rls,
    rel: Relation,
    command: str,
    columns: Mapping[str, str],
    user: Principal,
    other: Principal,
    scope: Scope,
    config: SweepConfig | None = None,
    *,
    fires: str = "",
) -> list[Attempt]:
    """Write ``rel`` as ``user`` (``command``: INSERT a row like their own, or UPDATE one of
    their rows), once per column of ``columns`` set to ``other``'s value and once with all of
    them: each attempt with the changes to ``other``'s data, except the written row itself."""
    conn = rls.connection
    key = find_tenant_key(rel, config)
    mine_key = None if key is None else (str(user.sub) if key.per_user else user.tenant)
    theirs = _Values(str(other.sub), other.tenant, *_storage_object(rls, scope, other),
                     rows=_their_rows(rls, columns.values(), other, config))
    settable = {c: k for c, k in columns.items() if theirs.of(k) is not None}
    variations = [{c: k} for c, k in settable.items()] + ([dict(settable)] if len(settable) > 1 else [])
    if not variations:
        return []
    identity = rls.identity_for(user)
    assert identity is not None
    before_sql = scope.query(conn)
    before = scope.read(rls.owner_fetchall(before_sql))
    own = _own_row(rls, rel, key, mine_key, user, columns)
    address = _own_address(rls, rel, key, mine_key) if command == "UPDATE" else None
    if command == "UPDATE" and address is None:
        return []
    attempts = []
    for variation in variations:
        values = {c: theirs.of(k) for c, k in variation.items()}
        if command == "INSERT":
            query, params = insert_statement(rel, base_row(rel, own, values, keep=set(columns)))
        else:
            sets = sql.SQL(", ").join(
                sql.SQL("{c} = (select r.{c} from jsonb_populate_record(null::{rel}, %(row)s::jsonb) r)").format(
                    c=sql.Identifier(c), rel=rel.ident
                )
                for c in values
            )
            query = sql.SQL("update {rel} t set {sets} where t.tableoid::text || ':' || t.ctid::text = %(address)s").format(
                rel=rel.ident, sets=sets
            )
            params = {"row": to_json(values), "address": address}
        statement = bind(conn, query, params)
        try:
            results = rolled_back(conn, [identity_sql(conn, identity, rls.settings_in_effect()), statement, OWNER_SQL, before_sql])
        except psycopg.Error as exc:
            attempts.append(Attempt(f"user {user.sub}", statement, error=f"{exc.sqlstate}: {exc.diag.message_primary}", trigger=fires))
            continue
        written = results[1].rowcount
        changes = diff(before, scope.read(results[-1].rows))
        # the row the statement wrote is the table's business (tenant-leak), not the trigger's
        changes = [
            c for c in changes
            if not (c.table == rel.qualified and (c.added == written or c.rewritten or c.removed == written))
        ]
        attempts.append(
            Attempt(
                f"user {user.sub}", statement, rows=written,
                changes=tuple(c for c in changes if c.belongs_to(tenant=other.tenant, user=other.sub)), trigger=fires,
            )
        )
    return attempts


def _storage_object(rls: Rls, scope: Scope, other: Principal) -> tuple[str | None, str | None]:
    if scope.kind("storage.objects") is None:
        return None, None
    rows = rls.owner_fetchall(STORAGE_OBJECT_SQL, [str(other.sub)])
    return (rows[0][0], rows[0][1]) if rows else (None, None)


def _own_row(
    rls: Rls, rel: Relation, key: TenantKey | None, mine: str | None, user: Principal, columns: Mapping[str, str]
) -> dict[str, Any] | None:
    """One of the user's rows (as the owner reads it), else any row, with the user's ids in
    the id columns."""
    where = None
    params: dict[str, Any] = {}
    if key is not None and mine is not None:
        where, params = sql.SQL("({})::text = %(mine)s").format(key.sql()), {"mine": mine}
    with rls.as_owner(), rls.safely():
        row = sample_row(rls.connection, rel, where, params) if where is not None else None
        row = row if row is not None else sample_row(rls.connection, rel)
    row = dict(row or {})
    for column, kind in columns.items():
        if kind == USER_ID:
            row[column] = str(user.sub)
        elif kind == TENANT_ID and user.tenant is not None:
            row[column] = str(user.tenant)
    return row


def _own_address(rls: Rls, rel: Relation, key: TenantKey | None, mine: str | None) -> str | None:
    if key is None or mine is None:
        return None
    rows = rls.owner_fetchall(sql.SQL(ADDRESS_SQL).format(rel=rel.ident, key=key.sql()), {"mine": mine})
    return rows[0][0] if rows else None
