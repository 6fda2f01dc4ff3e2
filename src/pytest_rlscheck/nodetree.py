"""Read PostgreSQL's ``pg_node_tree`` text: the analysed expression trees the catalog keeps
for policies (``pg_policy.polqual``/``polwithcheck``), argument defaults
(``pg_proc.proargdefaults``) and SQL-standard function bodies (``pg_proc.prosqlbody``).

The format is the server's ``nodeToString``: ``{TYPE :field value ...}`` for a node,
``( ... )`` for a list (``(i 1 2)``/``(o ...)``/``(b ...)``/``(x ...)`` for integer, OID,
bitmapset and xid lists), ``<>`` for NULL or an empty list, ``"..."`` for a string node,
and ``:constvalue <len> [ b0 b1 ... ]`` for a constant's datum. Nothing here knows what a
policy is: :mod:`pytest_rlscheck.policy_model` reads the facts from the trees.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

__all__ = ["Node", "NodeTreeError", "parse", "walk", "without_locations"]

_TOKEN = re.compile(r'[(){}]|"(?:\\.|[^"\\])*"|(?:\\.|[^\s(){}\\"])+')
_LOCATION = re.compile(r" :location -?\d+")  # offsets into the original SQL text: no fact of ours
_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?\d+\.\d*(?:[eE][-+]?\d+)?")
_LIST_TAGS = frozenset({"i", "o", "b", "x"})


class NodeTreeError(ValueError):
    """The text is not a node tree this reader understands."""


class Node:
    """One node: its type (``OPEXPR``, ``VAR``, ``SUBLINK``...) and its fields (read only)."""

    __slots__ = ("type", "fields")

    def __init__(self, type: str, fields: dict[str, Any]) -> None:
        self.type = type
        self.fields = fields

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def __repr__(self) -> str:  # short: trees are deep
        return f"Node({self.type})"


def without_locations(text: str) -> str:
    """The tree's text without the offsets into the SQL it was written in: two trees of the
    same expression, written at different places, read the same."""
    return _LOCATION.sub("", text)


def _unescape(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token) if "\\" in token else token


def _scalar(token: str, tokens: list[str], i: int) -> tuple[Any, int]:
    """The value of a plain token at ``tokens[i - 1]``; a datum takes the tokens after it."""
    first = token[0]
    if first == '"':
        return _unescape(token[1:-1]), i
    if token == "true":
        return True, i
    if token == "false":
        return False, i
    if (first.isdigit() or first == "-") and _INT.fullmatch(token):
        if i < len(tokens) and tokens[i] == "[":  # a datum: its length, then its bytes
            end = tokens.index("]", i)
            return bytes(int(b) & 0xFF for b in tokens[i + 1 : end]), end + 1
        return int(token), i
    if (first.isdigit() or first == "-") and _FLOAT.fullmatch(token):
        return float(token), i
    return _unescape(token), i


def parse(text: str | None) -> Any:
    """The tree of ``text`` (a node, or a list of nodes for a list such as ``prosqlbody``);
    None for None. Read without recursion: one pass over the tokens, a stack of the nodes and
    lists still open."""
    if text is None:
        return None
    tokens = _TOKEN.findall(_LOCATION.sub("", text))
    n = len(tokens)
    # each open container: [kind, value, pending field name] with kind "{" (a node) or "(" (a list)
    stack: list[list[Any]] = []
    result: Any = _NOTHING
    i = 0
    while i < n:
        token = tokens[i]
        i += 1
        if token == "{":
            if i >= n:
                raise NodeTreeError("the node tree ends too early")
            stack.append(["{", Node(tokens[i], {}), None])
            i += 1
            continue
        if token == "(":
            if i < n and tokens[i] in _LIST_TAGS:
                i += 1
            stack.append(["(", [], None])
            continue
        if token == "}" or token == ")":
            if not stack or stack[-1][0] != ("{" if token == "}" else "("):
                raise NodeTreeError(f"unexpected {token!r}")
            value = stack.pop()[1]
        elif stack and stack[-1][0] == "{" and stack[-1][2] is None:
            if token[0] != ":":
                raise NodeTreeError(f"expected a field name in {stack[-1][1].type}, got {token!r}")
            stack[-1][2] = token[1:]
            continue
        elif token == "<>":
            value = None
        else:
            value, i = _scalar(token, tokens, i)
        if not stack:
            if result is not _NOTHING:
                raise NodeTreeError(f"unexpected text after the tree: {token!r}")
            result = value
            continue
        top = stack[-1]
        if top[0] == "(":
            top[1].append(value)
        else:
            top[1].fields[top[2]] = value
            top[2] = None
    if stack:
        raise NodeTreeError("the node tree ends too early: a node or list is not closed")
    if result is _NOTHING:
        raise NodeTreeError("no node tree")
    return result


_NOTHING = object()


def walk(tree: Any) -> Iterator[Node]:
    """Every node of ``tree``, depth first (lists and fields alike)."""
    if isinstance(tree, Node):
        yield tree
        for value in tree.fields.values():
            yield from walk(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from walk(item)
