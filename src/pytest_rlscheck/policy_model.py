"""The one model of what policies and functions do, read from what PostgreSQL resolved.

Every rule and probe asks its questions here — "does this policy call auth.uid() per row",
"which of the row's columns does it compare with the caller", "is it constant true",
"does it read user_metadata", "does this function read the caller" — and nowhere else.

Where the server keeps the analysed tree, the facts come from it: the expressions of a
policy (``pg_policy.polqual``/``polwithcheck``), the DEFAULTs of a function's arguments
(``proargdefaults``) and SQL-standard bodies (``prosqlbody``, PostgreSQL 14+), as
``pg_node_tree`` read by :mod:`pytest_rlscheck.nodetree`: functions by OID, columns by
number, sublinks as sublinks, constants as values. Only PL/pgSQL and plain SQL bodies exist
as text alone; they are read with the one SQL tokenizer (:func:`pytest_rlscheck.sqlsplit.tokens`),
so that comments, strings and quoted names are told apart the way the server does.

The OIDs in the trees are resolved in bulk (:data:`RESOLVE_FUNCTIONS_SQL`,
:data:`RESOLVE_OPERATORS_SQL`: one query each for the whole catalog), by :class:`Names`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from .nodetree import Node, parse, walk
from .sqlsplit import tokens

__all__ = [
    "CALLER_FUNCTIONS",
    "Call",
    "Caller",
    "ExprFacts",
    "FunctionFacts",
    "Names",
    "RESOLVE_FUNCTIONS_SQL",
    "RESOLVE_OPERATORS_SQL",
    "SESSION_FUNCTIONS",
    "body_facts",
    "expression_facts",
    "oids_in",
    "unwrapped_spans",
]

#: The functions through which a policy or a function body learns who is calling (not
#: current_user: in a SECURITY DEFINER body that is the owner, and on Supabase session_user
#: is the authenticator).
CALLER_FUNCTIONS = ("auth.uid", "auth.jwt", "auth.role", "auth.email")
#: The request settings PostgREST sets: ``current_setting('request.jwt.claims', true)``.
CLAIMS_SETTING = "request.jwt.claim"
#: Functions whose value depends on the session, the request or the moment, not on their
#: arguments alone: a function that calls one is not IMMUTABLE, whatever it is declared.
SESSION_FUNCTIONS = (
    *CALLER_FUNCTIONS,
    *(f"pg_catalog.{name}" for name in (
        "current_setting", "now", "statement_timestamp", "clock_timestamp", "transaction_timestamp", "timeofday",
        "current_user", "session_user", "current_schema", "current_schemas", "random", "pg_backend_pid",
        "inet_client_addr",
    )),
)
#: The SQL keywords that read the session (SQLValueFunction): CURRENT_USER, CURRENT_TIMESTAMP...
_SESSION_KEYWORDS = frozenset({
    "current_user", "session_user", "current_role", "current_timestamp", "current_date", "current_time",
    "localtime", "localtimestamp",
})
#: SQLValueFunction ops up to this one are the date/time ones (PostgreSQL 16+ has no others).
_SVF_LAST_TIME_OP = 8
_RTE_RELATION = 0

RESOLVE_FUNCTIONS_SQL = """
select p.oid, n.nspname || '.' || p.proname
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where p.oid = any(%s::oid[])
"""
RESOLVE_OPERATORS_SQL = "select o.oid, o.oprname from pg_operator o where o.oid = any(%s::oid[])"

# nodeToString's enums, written as numbers
_EXPR_SUBLINK = 4
_ANY_SUBLINK = 2
_IS_NOT_NULL = 1
_CAST_FORMATS = (1, 2)  # COERCE_EXPLICIT_CAST, COERCE_IMPLICIT_CAST
_TEXT_TYPES = (25, 1043, 1042, 19)  # text, varchar, bpchar, name
_INT_TYPES = (21, 23, 20)  # int2, int4, int8
_BOOL = 16


@dataclass(frozen=True)
class Names:
    """What the OIDs of the trees name: functions as ``schema.name``, operators by symbol."""

    functions: Mapping[int, str] = field(default_factory=dict)
    operators: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, conn: Any, trees: Iterable[Any]) -> Names:
        """Resolve every function and operator the ``trees`` (parsed, or as text) name: two
        queries in all."""
        funcs: set[int] = set()
        ops: set[int] = set()
        for tree in trees:
            f, o = oids_in_text(tree) if isinstance(tree, str) else oids_in(tree)
            funcs |= f
            ops |= o
        functions = dict(conn.execute(RESOLVE_FUNCTIONS_SQL, [sorted(funcs)]).fetchall()) if funcs else {}
        operators = dict(conn.execute(RESOLVE_OPERATORS_SQL, [sorted(ops)]).fetchall()) if ops else {}
        return cls(functions, operators)

    def function(self, oid: int | None) -> str:
        return self.functions.get(oid or 0, "")

    def operator(self, oid: int | None) -> str:
        return self.operators.get(oid or 0, "")


def oids_in(tree: Any) -> tuple[set[int], set[int]]:
    """The function and operator OIDs a tree names."""
    funcs: set[int] = set()
    ops: set[int] = set()
    for node in walk(tree):
        if node.type == "FUNCEXPR":
            funcs.add(node["funcid"])
        elif node.type in ("OPEXPR", "SCALARARRAYOPEXPR", "NULLIFEXPR", "DISTINCTEXPR"):
            ops.add(node["opno"])
    return funcs, ops


_FUNCID = re.compile(r"\{FUNCEXPR :funcid (\d+)")
_OPNO = re.compile(r"\{(?:OPEXPR|SCALARARRAYOPEXPR|NULLIFEXPR|DISTINCTEXPR) :opno (\d+)")


def oids_in_text(text: str) -> tuple[set[int], set[int]]:
    """:func:`oids_in` of a tree still as text, in one scan: the first field of those nodes
    is the OID (as every PostgreSQL since 9.x writes them)."""
    return {int(m) for m in _FUNCID.findall(text)}, {int(m) for m in _OPNO.findall(text)}


@dataclass(frozen=True)
class Caller:
    """An expression that says who is calling: a call of one of :data:`CALLER_FUNCTIONS`
    (or of ``current_setting('request.jwt.claims')``), and the JSON path read from it."""

    function: str
    path: tuple[str, ...] = ()

    @property
    def user_id(self) -> bool:
        """It is the caller's user id: ``auth.uid()`` or the ``sub`` claim."""
        return (self.function == "auth.uid" and not self.path) or self.path == ("sub",)

    @property
    def role(self) -> bool:
        """It is the caller's role: ``auth.role()`` or the ``role`` claim."""
        return (self.function == "auth.role" and not self.path) or self.path == ("role",)


@dataclass(frozen=True)
class Call:
    """One call in an expression."""

    function: str  # schema.name
    once: bool  # inside an uncorrelated ``(select ...)`` without FROM: run once per statement
    row_arguments: bool  # its arguments read columns (of the row or of a subquery's rows)
    #: the policy's own columns among its arguments: ``("organization_id",)`` for ``is_member(organization_id)``
    row_columns: tuple[str, ...] = ()

    def named(self, name: str) -> bool:
        """``name`` is ``schema.name``, or a bare name for a function of any schema."""
        return self.function == name or ("." not in name and self.function.rpartition(".")[2] == name)


@dataclass(frozen=True)
class ExprFacts:
    """What one policy expression does, as PostgreSQL analysed it."""

    calls: tuple[Call, ...] = ()
    caller_columns: Mapping[str, tuple[Caller, ...]] = field(default_factory=dict)  # column -> what it is compared with
    set_columns: frozenset[str] = frozenset()  # col IN (SELECT ...), col = ANY (a set that is not a literal list)
    #: The same for expressions over one column of the row (``(storage.foldername(name))[1]``,
    #: ``split_part(path, '/', 1)``), as SQL over the row's columns (names quoted)
    caller_expressions: Mapping[str, tuple[Caller, ...]] = field(default_factory=dict)
    set_expressions: frozenset[str] = frozenset()
    constant_true: bool = False
    every_user: bool = False  # holds for every signed-in user, whatever the row
    references_row: bool = False
    reads_caller: bool = False
    reads_user_metadata: bool = False
    #: The relations (OIDs) its subqueries read: the tables a policy consults for authorization.
    relations: frozenset[int] = frozenset()
    #: Columns of those relations compared with the caller's user id, as (relation OID, column):
    #: ``m.user_id = (select auth.uid())`` inside ``exists (select 1 from members m ...)``.
    relation_user_columns: frozenset[tuple[int, str]] = frozenset()

    def unwrapped(self, *names: str) -> list[Call]:
        """The calls of ``names`` that run once per row (not inside ``(select ...)``)."""
        return [c for c in self.calls if not c.once and any(c.named(n) for n in names)]

    def calls_unwrapped(self, *names: str) -> bool:
        return bool(self.unwrapped(*names))

    def compared_with_user(self) -> frozenset[str]:
        """The row's columns compared with the caller's user id (``user_id = (select auth.uid())``)."""
        return frozenset(c for c, callers in self.caller_columns.items() if any(k.user_id for k in callers))

    def expressions_compared_with_user(self) -> frozenset[str]:
        """Expressions over the row compared with the caller's user id."""
        return frozenset(e for e, callers in self.caller_expressions.items() if any(k.user_id for k in callers))

    def filter_columns(self) -> frozenset[str]:
        """The row's columns compared with the caller or with a set of tenants."""
        return frozenset(self.caller_columns) | self.set_columns


@dataclass(frozen=True)
class FunctionFacts:
    """What a function body does: the names it calls (lower case, without schema) and
    whether it reads the caller."""

    calls: frozenset[str] = frozenset()
    reads_caller: bool = False
    from_tree: bool = False  # read from prosqlbody, not from text
    #: The relations the body names, lower case, as written (``public.members`` or ``members``);
    #: from a tree, the OIDs in ``relation_oids``. Resolve them with the catalog.
    relations: frozenset[str] = frozenset()
    relation_oids: frozenset[int] = frozenset()
    #: What it reads that is not its arguments: :data:`SESSION_FUNCTIONS` it calls (qualified
    #: where known), CURRENT_USER / CURRENT_TIMESTAMP keywords.
    session_reads: frozenset[str] = frozenset()


# -- expressions ------------------------------------------------------------------------


def _strip(node: Any, names: Names) -> Any:
    """The expression under casts and relabelling."""
    while isinstance(node, Node):
        if node.type in ("RELABELTYPE", "COERCEVIAIO", "ARRAYCOERCEEXPR", "COLLATEEXPR"):
            node = node["arg"]
        elif node.type == "FUNCEXPR" and node["funcformat"] in _CAST_FORMATS and len(node["args"] or ()) == 1:
            node = node["args"][0]
        else:
            return node
    return node


def _scalar_select(node: Any) -> Any:
    """The expression of ``(select <expr>)`` without FROM, or None."""
    if isinstance(node, Node) and node.type == "SUBLINK" and node["subLinkType"] == _EXPR_SUBLINK:
        query = node["subselect"]
        targets = [t for t in query.get("targetList") or () if not t.get("resjunk")]
        if not query.get("rtable") and len(targets) == 1 and not (query["jointree"] or Node("")).get("quals"):
            return targets[0]["expr"]
    return None


def text_constant(node: Any) -> str | None:
    """The value of a text constant (a varlena datum), or None."""
    if not isinstance(node, Node) or node.type != "CONST" or node["consttype"] not in _TEXT_TYPES:
        return None
    data = node["constvalue"]
    if not isinstance(data, bytes) or not data:
        return None
    if node["consttype"] == 19:  # name: fixed length, NUL padded
        return data.split(b"\0", 1)[0].decode("utf-8", "replace")
    header = 1 if data[0] & 0x01 else 4  # a short (1-byte) or a 4-byte varlena header
    return data[header:].decode("utf-8", "replace")


def _int_constant(node: Any) -> int | None:
    """The value of an int2/int4/int8 constant, or None."""
    if not isinstance(node, Node) or node.type != "CONST" or node["consttype"] not in _INT_TYPES or node["constisnull"]:
        return None
    data = node["constvalue"]
    if not isinstance(data, bytes):
        return None
    width = {21: 2, 23: 4, 20: 8}[node["consttype"]]
    return int.from_bytes(data[:width], "little", signed=True)


def _quoted(name: str) -> str:
    """An identifier, quoted by psycopg."""
    return sql.Identifier(name).as_string(None)


def _is_null_constant(node: Any) -> bool:
    return isinstance(node, Node) and node.type == "CONST" and node["constisnull"]


def _caller(node: Any, names: Names) -> Caller | None:
    """What ``node`` says about the caller, when it says nothing else."""
    node = _strip(node, names)
    inner = _scalar_select(node)
    if inner is not None:
        return _caller(inner, names)
    if not isinstance(node, Node):
        return None
    if node.type == "FUNCEXPR":
        function = names.function(node["funcid"])
        args = node["args"] or []
        if function in CALLER_FUNCTIONS and not args:
            return Caller(function)
        if function == "pg_catalog.current_setting" and args:
            setting = text_constant(_strip(args[0], names))
            if setting and setting.startswith(CLAIMS_SETTING):  # request.jwt.claims, request.jwt.claim.sub
                rest = setting[len(CLAIMS_SETTING) :]
                return Caller("request.jwt.claims", tuple(rest[1:].split(".")) if rest.startswith(".") else ())
        return None
    if node.type == "OPEXPR" and names.operator(node["opno"]) in ("->", "->>") and len(node["args"]) == 2:
        base = _caller(node["args"][0], names)
        key = text_constant(_strip(node["args"][1], names))
        if base is not None and key is not None:
            return Caller(base.function, (*base.path, key))
    return None


class _Walker:
    """One pass over a policy expression, keeping the query level and whether the current
    subtree runs once per statement."""

    def __init__(self, names: Names, columns: Mapping[int, str]) -> None:
        self.names = names
        self.columns = columns
        self.calls: list[Call] = []
        self.caller_columns: dict[str, list[Caller]] = {}
        self.set_columns: set[str] = set()
        self.caller_expressions: dict[str, list[Caller]] = {}
        self.set_expressions: set[str] = set()
        self.references_row = False
        self.reads_caller = False
        self.user_metadata = False
        self.rtables: list[list[Any]] = []  # the range tables of the enclosing queries, innermost last
        self.relations: set[int] = set()
        self.relation_user_columns: set[tuple[int, str]] = set()

    def row_column(self, node: Any, level: int) -> str | None:
        """The name of the policy's table column ``node`` is (under casts), or None."""
        node = _strip(node, self.names)
        if isinstance(node, Node) and node.type == "VAR" and node["varlevelsup"] == level and node["varno"] == 1:
            return self.columns.get(node["varattno"])
        return None

    def row_expression(self, node: Any, level: int) -> str | None:
        """``f(col, <constants>)`` or ``(f(col, ...))[k]`` over one column of the policy's
        table, as SQL; None for anything else."""
        node = _strip(node, self.names)
        if not isinstance(node, Node):
            return None
        if node.type == "SUBSCRIPTINGREF" and not node.get("reflowerindexpr") and len(node["refupperindexpr"] or ()) == 1:
            index = _int_constant(node["refupperindexpr"][0])
            inner = self.row_expression(node["refexpr"], level)
            return f"({inner})[{index}]" if inner is not None and index is not None else None
        if node.type != "FUNCEXPR" or node["funcformat"] in _CAST_FORMATS:
            return None
        parts: list[str] = []
        columns = 0
        for arg in node["args"] or ():
            column = self.row_column(arg, level)
            if column is not None:
                columns += 1
                parts.append(_quoted(column))
                continue
            arg = _strip(arg, self.names)
            text = text_constant(arg)
            number = _int_constant(arg)
            if text is not None:
                parts.append("'" + text.replace("'", "''") + "'")
            elif number is not None:
                parts.append(str(number))
            else:
                return None
        if columns != 1:
            return None
        schema, _, name = self.names.function(node["funcid"]).rpartition(".")
        return f"{_quoted(schema)}.{_quoted(name)}({', '.join(parts)})" if schema else None

    def row_columns(self, args: Any, level: int) -> tuple[str, ...]:
        """The policy's table columns an expression reads directly (not inside its subqueries)."""
        found = (self.row_column(n, level) for n in _own_vars(args))
        return tuple(dict.fromkeys(c for c in found if c))

    def column_name(self, node: Node, level: int) -> str | None:
        """The name of any column a VAR reads: of the policy's table, or of a subquery's relation."""
        up = node["varlevelsup"]
        if up == level:
            return self.columns.get(node["varattno"]) if node["varno"] == 1 else None
        depth = len(self.rtables) - 1 - up
        if depth < 0 or depth >= len(self.rtables):
            return None
        rtable = self.rtables[depth]
        if not 0 < node["varno"] <= len(rtable):
            return None
        names = ((rtable[node["varno"] - 1].get("eref") or Node("")).get("colnames")) or []
        attno = node["varattno"]
        return names[attno - 1] if 0 < attno <= len(names) else None

    def relation_column(self, node: Any, level: int) -> tuple[int, str] | None:
        """(relation OID, column) when ``node`` (under casts) reads a column of a relation in
        a subquery's range table, not of the policy's row."""
        node = _strip(node, self.names)
        if not (isinstance(node, Node) and node.type == "VAR") or node["varlevelsup"] == level:
            return None
        depth = len(self.rtables) - 1 - node["varlevelsup"]
        if not 0 <= depth < len(self.rtables) or not 0 < node["varno"] <= len(self.rtables[depth]):
            return None
        rte = self.rtables[depth][node["varno"] - 1]
        name = self.column_name(node, level)
        if rte.get("rtekind") != _RTE_RELATION or not rte.get("relid") or name is None:
            return None
        return rte["relid"], name

    def visit(self, node: Any, level: int, once: bool) -> None:
        if isinstance(node, list):
            for item in node:
                self.visit(item, level, once)
            return
        if not isinstance(node, Node):
            return
        kind = node.type
        if kind == "VAR":
            if node["varlevelsup"] == level and node["varno"] == 1:
                self.references_row = True
            if self.column_name(node, level) == "raw_user_meta_data":
                self.user_metadata = True
            return
        if kind == "CONST":
            value = text_constant(node)
            if value in ("user_metadata", "raw_user_meta_data"):
                self.user_metadata = True
            return
        if kind == "FUNCEXPR":
            function = self.names.function(node["funcid"])
            self.calls.append(Call(function, once, _reads_columns(node["args"]), self.row_columns(node["args"], level)))
            if _caller(node, self.names) is not None:
                self.reads_caller = True
        elif kind == "OPEXPR" and self.names.operator(node["opno"]) == "=" and len(node["args"]) == 2:
            for this, that in (node["args"], node["args"][::-1]):
                column = self.row_column(this, level)
                expression = None if column else self.row_expression(this, level)
                caller = _caller(that, self.names) if column or expression else None
                if column and caller:
                    self.caller_columns.setdefault(column, []).append(caller)
                elif expression and caller:
                    self.caller_expressions.setdefault(expression, []).append(caller)
                elif not column and (read := self.relation_column(this, level)):
                    caller = _caller(that, self.names)
                    if caller is not None and caller.user_id:
                        self.relation_user_columns.add(read)
        elif kind == "SCALARARRAYOPEXPR" and len(node["args"]) == 2:
            values = _strip(node["args"][1], self.names)
            if not (isinstance(values, Node) and values.type in ("CONST", "ARRAYEXPR")):
                self._in_set(node["args"][0], level)
        elif kind == "SUBLINK":
            test = node.get("testexpr")
            if node["subLinkType"] == _ANY_SUBLINK and isinstance(test, Node) and test.type == "OPEXPR":
                self._in_set(test["args"][0], level)
            self.visit(test, level, once)
            query = node["subselect"]
            # a subquery without FROM that reads nothing of the rows around it runs once
            # (an InitPlan, or a hashed SubPlan for IN): ( SELECT f(auth.uid()) )
            inner_once = once or (not query.get("rtable") and not _correlated(query))
            self.visit_query(query, level + 1, inner_once)
            return
        elif kind == "QUERY":
            self.visit_query(node, level + 1, once)
            return
        for value in node.fields.values():
            if value.__class__ is Node or value.__class__ is list:  # scalars hold no node
                self.visit(value, level, once)

    def _in_set(self, node: Any, level: int) -> None:
        column = self.row_column(node, level)
        if column:
            self.set_columns.add(column)
            return
        expression = self.row_expression(node, level)
        if expression:
            self.set_expressions.add(expression)

    def visit_query(self, query: Node, level: int, once: bool) -> None:
        self.rtables.append(list(query.get("rtable") or ()))
        try:
            for name, value in query.fields.items():
                if name != "rtable":
                    self.visit(value, level, once)
            for rte in query.get("rtable") or ():  # subqueries and functions in FROM
                if rte.get("rtekind") == _RTE_RELATION and rte.get("relid"):
                    self.relations.add(rte["relid"])
                self.visit(rte.get("subquery"), level, once)
                self.visit(rte.get("functions"), level, once)
        finally:
            self.rtables.pop()


def _reads_columns(args: Any) -> bool:
    """Whether call arguments read a column (of any level) or a subquery's output."""
    return any(n.type == "VAR" or (n.type == "PARAM" and n["paramkind"] in (1, 2)) for n in walk(args))


def _own_vars(tree: Any) -> Iterator[Node]:
    """The VARs of an expression outside its subqueries (whose VARs count levels from there)."""
    if isinstance(tree, list):
        for item in tree:
            yield from _own_vars(item)
    elif isinstance(tree, Node) and tree.type != "QUERY":
        if tree.type == "VAR":
            yield tree
        for name, value in tree.fields.items():
            if not (tree.type == "SUBLINK" and name == "subselect"):
                yield from _own_vars(value)


def _correlated(query: Node) -> bool:
    """Whether a subquery reads columns of the queries around it."""

    def outer(tree: Any, depth: int) -> bool:
        if isinstance(tree, list):
            return any(outer(t, depth) for t in tree)
        if not isinstance(tree, Node):
            return False
        if tree.type == "VAR":
            return tree["varlevelsup"] > depth
        if tree.type == "QUERY":
            return any(outer(v, depth + 1) for v in tree.fields.values())
        return any(outer(v, depth) for v in tree.fields.values())

    return any(outer(v, 0) for v in query.fields.values())


def _every_user(tree: Any, names: Names) -> bool:
    """``auth.uid() IS NOT NULL``, ``auth.role() = 'authenticated'``, ``auth.jwt() ->> 'role' =
    'authenticated'``, ``auth.role() <> 'anon'``, ``auth.uid() <> NULL``: conditions over the
    caller alone that every signed-in user meets (the last one is never true, but is written
    in that belief)."""
    node = _strip(tree, names)
    if not isinstance(node, Node):
        return False
    if node.type == "NULLTEST" and node["nulltesttype"] == _IS_NOT_NULL:
        caller = _caller(node["arg"], names)
        return caller is not None and caller.user_id
    if node.type != "OPEXPR" or len(node["args"]) != 2:
        return False
    operator = names.operator(node["opno"])
    for this, that in (node["args"], node["args"][::-1]):
        caller = _caller(this, names)
        if caller is None:
            continue
        value = text_constant(_strip(that, names))
        if caller.role and ((operator == "=" and value == "authenticated") or (operator == "<>" and value == "anon")):
            return True
        if caller.user_id and operator == "<>" and _is_null_constant(_strip(that, names)):
            return True
    return False


def _constant_true(tree: Any) -> bool:
    return (
        isinstance(tree, Node) and tree.type == "CONST" and tree["consttype"] == _BOOL and not tree["constisnull"]
        and isinstance(tree["constvalue"], bytes) and tree["constvalue"][:1] == b"\x01"
    )


def expression_facts(tree: Any, names: Names, columns: Mapping[int, str]) -> ExprFacts:
    """The facts of one analysed expression; ``columns``: the table's columns by number."""
    walker = _Walker(names, columns)
    walker.visit(tree, 0, False)
    return ExprFacts(
        calls=tuple(walker.calls),
        caller_columns={c: tuple(v) for c, v in walker.caller_columns.items()},
        set_columns=frozenset(walker.set_columns),
        caller_expressions={e: tuple(v) for e, v in walker.caller_expressions.items()},
        set_expressions=frozenset(walker.set_expressions),
        constant_true=_constant_true(tree),
        every_user=_every_user(tree, names),
        references_row=walker.references_row,
        reads_caller=walker.reads_caller,
        reads_user_metadata=walker.user_metadata,
        relations=frozenset(walker.relations),
        relation_user_columns=frozenset(walker.relation_user_columns),
    )


def defaults_to_caller(tree: Any, names: Names) -> bool:
    """A DEFAULT that is the caller's user id (``_viewer uuid DEFAULT auth.uid()``)."""
    caller = _caller(tree, names)
    return caller is not None and caller.user_id


# -- function bodies --------------------------------------------------------------------


def body_facts(body: str, sqlbody: str | None, names: Names) -> FunctionFacts:
    """The facts of a function body: from its SQL-standard tree when there is one, else from
    the text of an SQL or PL/pgSQL body, tokenized."""
    if sqlbody:
        tree = parse(sqlbody)
        calls = set()
        reads = False
        oids: set[int] = set()
        session: set[str] = set()
        for node in walk(tree):
            if node.type == "FUNCEXPR":
                function = names.function(node["funcid"])
                calls.add(function.rpartition(".")[2].lower())
                reads = reads or _caller(node, names) is not None
                if function in SESSION_FUNCTIONS:
                    session.add(function)
            elif node.type == "SQLVALUEFUNCTION":
                session.add("current_timestamp" if (node.get("op") or 0) <= _SVF_LAST_TIME_OP else "current_user")
            elif node.type == "RANGETBLENTRY" and node.get("rtekind") == _RTE_RELATION and node.get("relid"):
                oids.add(node["relid"])
        return FunctionFacts(
            frozenset(c for c in calls if c), reads, from_tree=True, relation_oids=frozenset(oids),
            session_reads=frozenset(session),
        )
    calls_found: set[str] = set()
    session_found: set[str] = set()
    reads = False
    for qualified in _text_calls(body):
        schema, _, name = qualified.rpartition(".")
        calls_found.add(name)
        reads = reads or f"{schema}.{name}" in CALLER_FUNCTIONS
        if qualified in SESSION_FUNCTIONS or (not schema and f"pg_catalog.{name}" in SESSION_FUNCTIONS):
            session_found.add(qualified if schema else f"pg_catalog.{name}")
    code = [(k, s, e) for k, s, e in tokens(body) if k not in ("space", "comment", "block")]
    claims = any(CLAIMS_SETTING in body[s:e].lower() for kind, s, e in code)
    reads = reads or claims
    for i, (kind, start, end) in enumerate(code):
        word = body[start:end].lower() if kind == "word" else None
        follows_dot = i > 0 and body[code[i - 1][1] : code[i - 1][2]] == "."
        called = i + 1 < len(code) and body[code[i + 1][1] : code[i + 1][2]] == "("
        if word in _SESSION_KEYWORDS and not follows_dot and not called:
            session_found.add(word)
    if claims:
        session_found.add("request.jwt.claims")
    return FunctionFacts(
        frozenset(calls_found), reads, relations=frozenset(_text_relations(body, code)),
        session_reads=frozenset(session_found),
    )


#: Words after which SQL names a relation: FROM, JOIN, UPDATE, INSERT INTO, DELETE ... USING,
#: MERGE INTO, LOCK TABLE. After FROM/JOIN/USING a name followed by ``(`` is a function.
_RELATION_AFTER = {"from": False, "join": False, "using": False, "update": True, "into": True, "table": True}
_NOT_AN_ALIAS = frozenset({
    "where", "join", "inner", "left", "right", "full", "cross", "natural", "on", "using", "group", "order", "limit",
    "offset", "union", "except", "intersect", "having", "window", "for", "returning", "set", "values", "select",
    "as", "lateral", "default", "when", "then", "loop", "into", "fetch",
})


def _text_relations(text: str, code: list[tuple[str, int, int]]) -> Iterator[str]:
    """The relations SQL text names (``from a x, b``, ``join c``, ``update d``, ``insert into
    e``), lower case, qualified as written; a PL/pgSQL ``select ... into v`` names a variable,
    which resolving against the catalog leaves out."""

    def at(j: int) -> str:
        return text[code[j][1] : code[j][2]] if j < len(code) else ""

    def name_at(j: int) -> tuple[str | None, int]:
        first = _word(text, *code[j]) if j < len(code) else None
        if first is None:
            return None, j
        if at(j + 1) == "." and j + 2 < len(code) and (second := _word(text, *code[j + 2])) is not None:
            return f"{first}.{second}", j + 3
        return first, j + 1

    for i, (kind, start, end) in enumerate(code):
        if kind != "word" or text[start:end].lower() not in _RELATION_AFTER:
            continue
        table_first = _RELATION_AFTER[text[start:end].lower()]
        j = i + 1
        if at(j).lower() == "only":
            j += 1
        while True:
            name, j = name_at(j)
            if name is None or (at(j) == "(" and not table_first):
                break
            yield name
            if at(j).lower() == "as":
                j += 1
            if j < len(code) and code[j][0] in ("word", "quoted") and at(j).lower() not in _NOT_AN_ALIAS:
                j += 1
            if at(j) != ",":
                break
            j += 1


def _word(text: str, kind: str, start: int, end: int) -> str | None:
    if kind == "word":
        return text[start:end].lower()
    if kind == "quoted":
        return text[start + 1 : end - 1].replace('""', '"')
    return None


def _text_calls(text: str) -> Iterator[str]:
    """``schema.name`` (or ``name``) of every call in SQL text: a name followed by ``(``,
    comments and strings left out."""
    code = [(k, s, e) for k, s, e in tokens(text) if k not in ("space", "comment", "block")]
    for i, (kind, start, end) in enumerate(code):
        name = _word(text, kind, start, end)
        if name is None or i + 1 >= len(code) or text[code[i + 1][1] : code[i + 1][2]] != "(":
            continue
        qualified = name
        if i >= 2 and text[code[i - 1][1] : code[i - 1][2]] == ".":
            schema = _word(text, *code[i - 2])
            if schema is not None:
                qualified = f"{schema}.{name}"
        yield qualified


def unwrapped_spans(text: str, function: str) -> list[tuple[int, int]]:
    """Where, in a policy expression as ``pg_get_expr`` prints it, ``function`` is called
    outside a ``( SELECT ...)``: spans to wrap when the fix is shown. The decision whether
    to wrap comes from the tree (:meth:`ExprFacts.unwrapped`); this only finds the text."""
    code = [(k, s, e) for k, s, e in tokens(text) if k not in ("space", "comment", "block")]
    bare = function.rpartition(".")[2].lower()
    schema = function.rpartition(".")[0].lower()
    spans = []
    for i, (kind, start, end) in enumerate(code):
        if _word(text, kind, start, end) != bare or i + 1 >= len(code) or text[code[i + 1][1] : code[i + 1][2]] != "(":
            continue
        first = i
        if i >= 2 and text[code[i - 1][1] : code[i - 1][2]] == ".":
            if schema and _word(text, *code[i - 2]) != schema:
                continue
            first = i - 2
        # unqualified: pg_get_expr leaves out a schema that is on the search_path
        before = [text[s:e].upper() for _, s, e in code[max(0, first - 3) : first]]
        if before[-2:] == ["(", "SELECT"] or before[-3:] == ["(", "SELECT", "("]:
            continue  # already ( SELECT f() ) / ( SELECT (f() ...) )
        depth, j = 0, i + 1
        while j < len(code):
            token = text[code[j][1] : code[j][2]]
            depth += {"(": 1, ")": -1}.get(token, 0)
            if depth == 0:
                break
            j += 1
        spans.append((code[first][1], code[min(j, len(code) - 1)][2]))
    return spans
