"""What a function body touches: the relations it reads, the rows it writes and how they are
chosen, and whether it runs dynamic SQL.

Read from the body's text (an SQL or PL/pgSQL ``prosrc``, or what ``pg_get_function_sqlbody``
prints for a BEGIN ATOMIC body, whose relations the analysed tree gives by OID too), with the
SQL tokenizer: comments and string literals never count. Each statement (split at ``;``) is
searched for its write: ``INSERT INTO t``, ``UPDATE [ONLY] t ... SET``, ``DELETE FROM t``,
``MERGE INTO t``, ``TRUNCATE t``; the rows it writes are chosen by what follows the target
(the ``WHERE`` of an UPDATE or DELETE at the statement's own depth, the columns and values of
an INSERT, the whole of a MERGE):

* ``parameter``: that part names one of the function's parameters (or ``$n``, or a PL/pgSQL
  variable assigned from one);
* ``unconstrained``: an UPDATE or DELETE without WHERE, a TRUNCATE;
* ``fixed``: neither (constants, ``now()``, other tables).

``by_caller`` says the same part reads the caller: ``auth.uid()`` / ``auth.jwt()`` / the
request's claims, a function that reads them (:func:`pytest_rlscheck.rules.definer_exposed.callers_readers`),
or a variable assigned from one of those. Names are resolved against the catalog:
qualified, or unqualified through the function's ``search_path`` setting (``public`` when it
sets none, as PostgREST calls it); a relation of ``auth`` or ``storage`` is a platform table
whether or not the catalog holds it. What the functions it calls touch (by name, in the
catalog) counts as its own. ``EXECUTE`` of a string (PL/pgSQL), ``dblink`` or
``query_to_xml`` run SQL that is not in the text: then it may touch anything.
"""

from __future__ import annotations

import re

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from .catalog import Catalog, Function
from .policy_model import CALLER_FUNCTIONS, CLAIMS_SETTING
from .sqlsplit import tokens

__all__ = ["PLATFORM_SCHEMAS", "Touches", "Write", "touches"]

#: Schemas whose tables are the platform's (Supabase Auth, Storage).
PLATFORM_SCHEMAS = ("auth", "storage", "vault")
#: Functions of the platform's extensions that write its tables (by name, as bodies call them).
PLATFORM_WRITERS = {"create_secret": ("INSERT", "vault.secrets"), "update_secret": ("UPDATE", "vault.secrets")}
#: ... and that send HTTP requests (pg_net, the http extension).
REQUESTS = frozenset({"http_get", "http_post", "http_delete", "http_put", "http_patch", "http_head", "http",
                      "http_request"})
#: A JWT (the service_role key, an access token) written into a body.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")
#: Functions that run SQL given as text.
_DYNAMIC_CALLS = frozenset({
    "dblink", "dblink_exec", "dblink_send_query", "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema",
})
_NOT_A_TARGET = frozenset({"set", "of", "nowait", "skip", "only", "select", "values", "default", "where"})
_CALLER_NAMES = frozenset(f.rpartition(".")[2] for f in CALLER_FUNCTIONS)

Token = tuple[str, str]  # (kind, text) with words lower-cased and quoted identifiers unquoted


@dataclass(frozen=True)
class Write:
    """One statement's write: ``command`` (INSERT, UPDATE, DELETE, MERGE, TRUNCATE) into
    ``table`` (``schema.name``), how its rows are chosen, and the (column, parameter) pairs
    its row choice compares (``id = p_conversation_id``)."""

    command: str
    table: str
    chosen_by: str  # "parameter", "unconstrained" or "fixed"
    by_caller: bool
    rls: bool = False  # the table is in the catalog with RLS on
    platform: bool = False  # auth.* or storage.*
    compared: tuple[tuple[str, str], ...] = ()
    through: str = ""  # the called function that writes it, when not the body itself

    @property
    def protected(self) -> bool:
        """A table the API cannot write freely: RLS protects it, or the platform owns it."""
        return self.rls or self.platform


@dataclass(frozen=True)
class Touches:
    reads: frozenset[str] = frozenset()  # relations read (or written), schema.name
    writes: tuple[Write, ...] = ()
    dynamic_sql: bool = False
    #: the HTTP requests it sends (pg_net's ``net.http_delete``, the http extension's ``http_post``)
    requests: tuple[str, ...] = ()
    credential: bool = False  # its text holds a credential (a JWT such as a service_role key)

    @property
    def nothing(self) -> bool:
        """No relation named, no dynamic SQL, no request: it computes from its arguments alone."""
        return not self.reads and not self.writes and not self.dynamic_sql and not self.requests

    def compared_columns(self, parameter: str) -> set[tuple[str, str]]:
        """(table, column) pairs a write's row choice compares ``parameter`` with."""
        return {(w.table, c) for w in self.writes if not w.through for c, p in w.compared if p == parameter}


# -- the text ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RawWrite:
    command: str
    target: str  # as written, lower case, maybe qualified
    chosen_by: str
    words: frozenset[str]  # words and calls of the row choice, for the caller test
    claims: bool
    compared: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Text:
    reads: frozenset[str]  # names after FROM, JOIN, USING (not a call), lower case, as written
    writes: tuple[_RawWrite, ...]
    dynamic_sql: bool
    caller_vars: frozenset[str]  # variables assigned from the caller (directly)
    var_words: Mapping[str, frozenset[str]]  # variable -> the words of what it is assigned


def _code(body: str) -> list[Token]:
    out: list[Token] = []
    for kind, start, end in tokens(body):
        if kind in ("space", "comment", "block"):
            continue
        text = body[start:end]
        if kind == "word":
            out.append(("word", text.lower()))
        elif kind == "quoted":
            out.append(("word", text[1:-1].replace('""', '"')))
        elif kind in ("string", "estring", "dollar"):
            out.append(("string", text))
        else:
            out.append((kind, text))
    return out


def _statements(code: list[Token]) -> list[list[Token]]:
    out: list[list[Token]] = [[]]
    for token in code:
        if token == ("punct", ";"):
            out.append([])
        else:
            out[-1].append(token)
    return [s for s in out if s]


def _name_at(stmt: list[Token], j: int) -> tuple[str | None, int]:
    if j >= len(stmt) or stmt[j][0] != "word":
        return None, j
    first = stmt[j][1]
    if j + 2 < len(stmt) and stmt[j + 1] == ("other", ".") and stmt[j + 2][0] == "word":
        return f"{first}.{stmt[j + 2][1]}", j + 3
    return first, j + 1


def _depths(stmt: list[Token]) -> list[int]:
    depth, out = 0, []
    for kind, text in stmt:
        if (kind, text) == ("punct", ")"):
            depth -= 1
        out.append(depth)
        if (kind, text) == ("punct", "("):
            depth += 1
    return out


def _params_in(part: list[Token], params: Mapping[str, set[str]]) -> bool:
    for i, (kind, text) in enumerate(part):
        if kind == "word" and text in params:
            return True
        if (kind, text) == ("other", "$") and i + 1 < len(part) and part[i + 1][1].isdigit():
            return True
    return False


def _compared(part: list[Token], params: Mapping[str, set[str]], own: str) -> tuple[tuple[str, str], ...]:
    """(column, parameter) of ``[t.]column = parameter`` and ``parameter = [t.]column`` (also
    ``in (parameter)``, ``= any(parameter)``); ``own``: the function's name, which may qualify
    a parameter (``fn.p_id``, as ``pg_get_function_sqlbody`` prints them)."""
    found = []
    for i, (kind, text) in enumerate(part):
        if kind != "word" or text not in params:
            continue
        j = i - 1
        if i > 0 and part[i - 1] == ("other", "."):
            if i < 2 or part[i - 2] != ("word", own):
                continue
            j = i - 3
        while j >= 0 and part[j] in (("punct", "("), ("word", "any")):
            j -= 1
        if j >= 1 and part[j][1] in ("=", "in") and part[j - 1][0] == "word":
            found += [(part[j - 1][1], p) for p in sorted(params[text])]
        if i + 2 < len(part) and part[i + 1] == ("other", "=") and part[i + 2][0] == "word":
            column = part[i + 4][1] if i + 4 < len(part) and part[i + 3] == ("other", ".") else part[i + 2][1]
            found += [(column, p) for p in sorted(params[text])]
    return tuple(dict.fromkeys(found))


def _writes_of(stmt: list[Token], params: Mapping[str, set[str]], own: str) -> Iterable[_RawWrite]:
    """``params``: the parameters, and the variables carrying them (name -> the parameters)."""
    depths = _depths(stmt)
    for i, (kind, word) in enumerate(stmt):
        if kind != "word":
            continue
        nxt = stmt[i + 1][1] if i + 1 < len(stmt) else ""
        prev = stmt[i - 1][1] if i > 0 else ""
        j = i + 1
        if word == "insert" and nxt == "into" or word == "merge" and nxt == "into":
            j = i + 2
        elif word == "delete" and nxt == "from":
            j = i + 2
        elif word == "update" and prev not in ("for", "key", "do", "share", "or", "before", "after", "of", "grant", ","):
            pass
        elif word == "truncate":
            j = i + 2 if nxt == "table" else i + 1
        else:
            continue
        if j < len(stmt) and stmt[j] == ("word", "only"):
            j += 1
        target, after = _name_at(stmt, j)
        if target is None or target in _NOT_A_TARGET:
            continue
        command = word.upper()
        if command == "UPDATE" and ("word", "set") not in stmt[after : after + 4]:
            continue  # not an UPDATE statement (a trigger event, a privilege)
        if command == "TRUNCATE":
            yield _RawWrite(command, target, "unconstrained", frozenset(), False, ())
            continue
        rest = list(range(after, len(stmt)))
        if command in ("UPDATE", "DELETE"):
            where = next((k for k in rest if stmt[k] == ("word", "where") and depths[k] == depths[i]), None)
            if where is None:
                yield _RawWrite(command, target, "unconstrained", frozenset(), False, ())
                continue
            end = next((k for k in range(where, len(stmt)) if depths[k] < depths[i]
                        or stmt[k] == ("word", "returning") and depths[k] == depths[i]), len(stmt))
            part = stmt[where + 1 : end]
        else:
            part = stmt[after:]
        chosen = "parameter" if _params_in(part, params) else "fixed"
        words = frozenset(t for k, t in part if k == "word")
        claims = any(k == "string" and CLAIMS_SETTING in t.lower() for k, t in part)
        yield _RawWrite(command, target, chosen, words, claims, _compared(part, params, own))


def _assignments(statements: list[list[Token]]) -> dict[str, set[str]]:
    """PL/pgSQL variables and the words of what they are assigned: ``v := expr``, ``v type
    := expr`` / ``DEFAULT expr`` in DECLARE, ``SELECT ... INTO v``, ``RETURNING ... INTO v``."""
    out: dict[str, set[str]] = {}
    for stmt in statements:
        s = stmt
        while s and s[0][0] == "word" and s[0][1] in ("declare", "begin"):
            s = s[1:]
        words = {t for k, t in s if k == "word"} | {"request.jwt.claims" for k, t in s if k == "string" and CLAIMS_SETTING in t.lower()}
        if s and s[0][0] == "word":
            for k in range(1, min(len(s), 8)):
                if s[k][1] in (":=", "=") or s[k] == ("word", "default"):
                    out.setdefault(s[0][1], set()).update(t for kk, t in s[k + 1 :] if kk == "word")
                    if any(kk == "string" and CLAIMS_SETTING in t.lower() for kk, t in s[k + 1 :]):
                        out[s[0][1]].add("request.jwt.claims")
                    break
                if s[k][0] != "word" and s[k][1] not in (".", "(", ")", "[]", "%") and not s[k][1].isdigit():
                    break
        for k, (kind, text) in enumerate(s):
            if (kind, text) == ("word", "into") and k > 0 and s[k - 1][1] not in ("insert", "merge"):
                j = k + 1
                if j < len(s) and s[j] == ("word", "strict"):
                    j += 1
                while j < len(s) and s[j][0] == "word":
                    out.setdefault(s[j][1], set()).update(words)
                    if j + 1 < len(s) and s[j + 1] == ("other", ","):
                        j += 2
                    else:
                        break
    return out


@lru_cache(maxsize=4096)
def _read_text(body: str, params: tuple[str, ...], own: str) -> _Text:
    code = _code(body)
    statements = _statements(code)
    assigned = _assignments(statements)
    # variables that carry a parameter's value, to a fixed point
    origins: dict[str, set[str]] = {p: {p} for p in params}
    changed = True
    while changed:
        changed = False
        for var, words in assigned.items():
            found = set().union(*(origins[w] for w in words if w in origins and w != var))
            if found - origins.get(var, set()) and var not in params:
                origins.setdefault(var, set()).update(found)
                changed = True
    writes = tuple(w for stmt in statements for w in _writes_of(stmt, origins, own))
    dynamic = False
    for i, (kind, text) in enumerate(code):
        if kind != "word" or (i > 0 and code[i - 1] == ("other", ".")):
            continue
        nxt = code[i + 1] if i + 1 < len(code) else ("", "")
        if text == "execute" and nxt[1] not in ("on", "function", "procedure") and (i == 0 or code[i - 1][1] != "grant"):
            dynamic = True
        elif text in _DYNAMIC_CALLS and nxt == ("punct", "("):
            dynamic = True
    caller_vars = frozenset(v for v, words in assigned.items() if words & (_CALLER_NAMES | {"request.jwt.claims"}))
    reads = set()
    for i, (kind, text) in enumerate(code):
        if kind == "word" and text in ("from", "join", "using") and (i == 0 or code[i - 1] != ("other", ".")):
            j = i + 1 + (i + 1 < len(code) and code[i + 1] == ("word", "only"))
            name, after = _name_at(code, j)
            if name is not None and (after >= len(code) or code[after] != ("punct", "(")):
                reads.add(name)
    return _Text(frozenset(reads), writes, dynamic, caller_vars, {v: frozenset(w) for v, w in assigned.items()})


# -- against the catalog -------------------------------------------------------------------


def search_path(fn: Function) -> tuple[str, ...]:
    """The schemas an unqualified name is looked up in: the function's ``search_path``
    setting, else ``public`` (what the API's requests have)."""
    for setting in fn.config:
        name, _, value = setting.partition("=")
        if name.strip().lower() == "search_path":
            parts = [p.strip().strip('"') for p in value.split(",")]
            return tuple(p.lower() for p in parts if p and p != "$user")
    return ("public",)


def _resolve(name: str, path: tuple[str, ...], known: Mapping[str, object]) -> str | None:
    if "." in name:
        schema = name.split(".", 1)[0]
        return name if name in known or schema in PLATFORM_SCHEMAS else None
    for schema in path:
        if f"{schema}.{name}" in known:
            return f"{schema}.{name}"
    return None


@dataclass
class _Lookup:
    """What resolving needs of one catalog, built once: relations by name and OID, functions by name."""

    relations: dict[str, object]
    by_oid: dict[int, str]
    functions: dict[str, list[Function]]
    cache: dict[frozenset[int], dict[int, Touches]]

    @classmethod
    def of(cls, catalog: Catalog) -> _Lookup:
        functions: dict[str, list[Function]] = {}
        for f in catalog.functions:
            functions.setdefault(f.name.lower(), []).append(f)
        return cls({r.qualified.lower(): r for r in catalog.relations},
                   {r.oid: r.qualified.lower() for r in catalog.relations}, functions, {})


_memo: list[tuple[Catalog, _Lookup]] = []


def touches(fn: Function, catalog: Catalog, readers: Iterable[int] = ()) -> Touches:
    """What ``fn`` touches, with what the functions it calls touch (by name, in
    ``catalog``); ``readers``: the OIDs of the functions that read the caller (for
    :attr:`Write.by_caller`). Kept for the last catalog."""
    reader_oids = frozenset(readers)
    if not _memo or _memo[0][0] is not catalog:
        _memo[:] = [(catalog, _Lookup.of(catalog))]
    lookup = _memo[0][1]
    cache = lookup.cache.setdefault(reader_oids, {})
    if fn.oid not in cache:
        reader_names = frozenset(f.name.lower() for f in catalog.functions if f.oid in reader_oids)
        cache[fn.oid] = _touches(fn, lookup, reader_names, cache, set())
    return cache[fn.oid]


def _touches(
    fn: Function, lookup: _Lookup, reader_names: frozenset[str], cache: dict[int, Touches], visiting: set[int],
) -> Touches:
    if fn.oid in cache:
        return cache[fn.oid]
    visiting.add(fn.oid)
    known, by_oid = lookup.relations, lookup.by_oid
    path = search_path(fn)
    params = tuple(n.lower() for n in fn.argument_names if n)
    text = _read_text(fn.body, params, fn.name.lower())
    caller_words = _CALLER_NAMES | reader_names | {"request.jwt.claims"}
    caller_vars = set(text.caller_vars)
    changed = True
    while changed:  # a variable assigned from a caller variable
        changed = False
        for var, words in text.var_words.items():
            if var not in caller_vars and words & (caller_words | caller_vars):
                caller_vars.add(var)
                changed = True
    reads: set[str] = set()
    for name in text.reads:
        resolved = _resolve(name, path, known)
        if resolved:
            reads.add(resolved)
        elif "." in name and name.split(".", 1)[0] not in ("pg_catalog", "information_schema"):
            reads.add(name)  # a schema the sweep does not read (private.*): a relation all the same
    reads |= {by_oid[o] for o in fn.facts.relation_oids if o in by_oid}
    writes: list[Write] = []
    # a BEGIN ATOMIC body is printed for the loader's search_path: its bare names are the
    # relations its tree holds, by name
    tree_names = {n.rpartition(".")[2]: n for n in (by_oid[o] for o in fn.facts.relation_oids if o in by_oid)}
    for raw in text.writes:
        table = tree_names.get(raw.target) if fn.facts.from_tree and "." not in raw.target else None
        table = table or _resolve(raw.target, path, known)
        if table is None:
            continue
        rel = known.get(table)
        by_caller = raw.claims or bool(raw.words & (caller_words | caller_vars))
        writes.append(Write(raw.command, table, raw.chosen_by, by_caller, bool(rel and getattr(rel, "rls_enabled", False)),
                            table.split(".", 1)[0] in PLATFORM_SCHEMAS, raw.compared))
        reads.add(table)
    dynamic = text.dynamic_sql
    inner_requests: list[str] = []
    inner_credential = False
    for called in sorted(fn.calls()):
        for other in lookup.functions.get(called, ()):
            if other.oid in visiting or other.oid == fn.oid:
                continue
            inner = _touches(other, lookup, reader_names, cache, visiting)
            reads |= inner.reads
            dynamic = dynamic or inner.dynamic_sql
            inner_requests += [f"{r} through {other.qualified}" for r in inner.requests]
            inner_credential = inner_credential or inner.credential
            for w in inner.writes:
                chosen = w.chosen_by if w.chosen_by != "parameter" or params else "fixed"
                writes.append(Write(w.command, w.table, chosen, w.by_caller, w.rls, w.platform, (),
                                    w.through or other.qualified))
    requests: list[str] = []
    for called in sorted(fn.calls()):
        if called in PLATFORM_WRITERS and not lookup.functions.get(called):
            command, table = PLATFORM_WRITERS[called]
            writes.append(Write(command, table, "parameter" if params else "fixed", False, False, True, (), called))
            reads.add(table)
        elif called in REQUESTS and not lookup.functions.get(called):
            requests.append(called)
    credential = bool(_JWT.search(fn.body or "")) or "service_role" in (fn.body or "").lower()
    if inner_requests:  # a callee's requests are its caller's too, and so are their credentials
        requests += inner_requests
        credential = credential or inner_credential
    visiting.discard(fn.oid)
    result = Touches(frozenset(reads), tuple(dict.fromkeys(writes)), dynamic, tuple(requests), credential)
    cache[fn.oid] = result
    return result
