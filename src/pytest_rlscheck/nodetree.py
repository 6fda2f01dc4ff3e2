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
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Node", "NodeTreeError", "parse", "walk"]

_TOKEN = re.compile(r'\s*((?:\\.|[^\s(){}\\"])+|"(?:\\.|[^"\\])*"|[(){}])', re.S)
_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?\d+\.\d*(?:[eE][-+]?\d+)?")
_LIST_TAGS = {"i", "o", "b", "x"}


class NodeTreeError(ValueError):
    """The text is not a node tree this reader understands."""


@dataclass(frozen=True)
class Node:
    """One node: its type (``OPEXPR``, ``VAR``, ``SUBLINK``...) and its fields."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict, compare=False)

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def __repr__(self) -> str:  # short: trees are deep
        return f"Node({self.type})"


def _unescape(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token)


class _Reader:
    def __init__(self, text: str) -> None:
        self.tokens = [m.group(1) for m in _TOKEN.finditer(text)]
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        if self.i >= len(self.tokens):
            raise NodeTreeError("the node tree ends too early")
        token = self.tokens[self.i]
        self.i += 1
        return token

    def value(self) -> Any:
        token = self.take()
        if token == "{":
            return self.node()
        if token == "(":
            return self.list()
        if token == "<>":
            return None
        return self.scalar(token)

    def scalar(self, token: str) -> Any:
        if token.startswith('"'):
            return _unescape(token[1:-1])
        if token in ("true", "false"):
            return token == "true"
        if _INT.fullmatch(token):
            number = int(token)
            if self.peek() == "[":  # a datum: its length, then its bytes
                self.take()
                data = []
                while (byte := self.take()) != "]":
                    data.append(int(byte) & 0xFF)
                return bytes(data)
            return number
        if _FLOAT.fullmatch(token):
            return float(token)
        return _unescape(token)

    def list(self) -> list[Any]:
        items: list[Any] = []
        if self.peek() in _LIST_TAGS:
            self.take()
        while self.peek() != ")":
            if self.peek() is None:
                raise NodeTreeError("a list is not closed")
            items.append(self.value())
        self.take()
        return items

    def node(self) -> Node:
        kind = self.take()
        fields: dict[str, Any] = {}
        while (token := self.peek()) != "}":
            if token is None:
                raise NodeTreeError(f"node {kind} is not closed")
            self.take()
            if not token.startswith(":"):
                raise NodeTreeError(f"expected a field name in {kind}, got {token!r}")
            fields[token[1:]] = self.value()
        self.take()
        return Node(kind, fields)


def parse(text: str | None) -> Any:
    """The tree of ``text`` (a node, or a list of nodes for a list such as ``prosqlbody``);
    None for None."""
    if text is None:
        return None
    reader = _Reader(text)
    result = reader.value()
    if reader.peek() is not None:
        raise NodeTreeError(f"unexpected text after the tree: {reader.peek()!r}")
    return result


def walk(tree: Any) -> Iterator[Node]:
    """Every node of ``tree``, depth first (lists and fields alike)."""
    if isinstance(tree, Node):
        yield tree
        for value in tree.fields.values():
            yield from walk(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from walk(item)
