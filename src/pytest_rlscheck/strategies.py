"""Hypothesis strategies for JSON(B) payloads, and for payloads aimed at a column's CHECK
constraints.

    from hypothesis import given
    from pytest_rlscheck.strategies import json_values, jsonb_objects, payloads_for

    @given(json_values(max_depth=2))
    def test_anything_jsonb_accepts(value): ...

``payloads_for(rls, "messages", "metadata")`` reads the column's CHECK constraints
(``pg_get_constraintdef``, tokenised with sqlparse) and aims at them: the keys they mention,
each member of their literal sets and its near-misses (case, spaces, look-alike letters),
the bounds of their comparisons and lengths at and around the edge (in characters that take
one to four bytes), and type confusion for every key — plus SQL NULL, JSON scalars and
arrays, and a broad fallback.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st
from sqlparse import lexer as _lexer
from sqlparse import tokens as T

if TYPE_CHECKING:
    from .protocol import RlsProtocol as Rls

__all__ = [
    "SQL_NULL",
    "ConstraintShape",
    "analyse_checks",
    "invalid_json_texts",
    "json_values",
    "jsonb_objects",
    "payloads_for",
]


class _SqlNull:
    """SQL NULL for the column — not the JSON ``null`` (which is Python ``None``)."""

    _instance: _SqlNull | None = None

    def __new__(cls) -> _SqlNull:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SQL_NULL"


SQL_NULL = _SqlNull()

# jsonb refuses \u0000 in strings, and text cannot hold lone surrogates.
_JSON_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_LOOK_ALIKES = {"a": "а", "e": "е", "o": "о", "c": "с", "p": "р", "x": "х", "i": "і", "s": "ѕ", "y": "у"}
_JSONB_TYPES = {"object", "array", "string", "number", "boolean", "null"}
_LENGTH_FUNCTIONS = {"length", "char_length", "character_length", "octet_length", "bit_length"}
_BYTES = {1: (0x20, 0x7E), 2: (0x80, 0x7FF), 3: (0x800, 0xFFFF), 4: (0x10000, 0x10FFFF)}
#: Members of one array or object in json_values: a few, so that a draw seldom goes past
#: max_leaves (st.recursive then draws it again: unbounded, the fuzz took twice as long;
#: three members, a fifth longer).
_MEMBERS = 2


def json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(_JSON_CHARS, max_size=20),
    )


def json_values(max_depth: int | None = 3, max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Any JSON value PostgreSQL's jsonb accepts (no ``\\u0000``, no NaN or Infinity): a
    scalar, or arrays and objects (of up to two members) of them nested, with
    ``max_leaves`` as in :func:`hypothesis.strategies.recursive`: at most that many scalars in
    all. Arrays and objects nest at most ``max_depth`` deep (one that would be deeper gives
    way to its first scalar, or goes); ``None``: as deep as Hypothesis goes."""
    keys = st.text(_JSON_CHARS, max_size=10)
    values = st.recursive(
        json_scalars(),
        lambda children: st.lists(children, max_size=_MEMBERS) | st.dictionaries(keys, children, max_size=_MEMBERS),
        max_leaves=max_leaves,
    )
    return values if max_depth is None else values.map(lambda value: _shallow(value, max_depth))


def _shallow(value: Any, depth: int) -> Any:
    clipped = _clipped(value, depth)
    return None if clipped is _NOTHING else clipped  # max_depth=0 and an empty array: null


def _clipped(value: Any, depth: int) -> Any:
    """``value`` with no array or object nested more than ``depth`` deep: one deeper gives way
    to its first scalar, or goes when it holds none (no scalar is added: max_leaves holds)."""
    if not isinstance(value, (list, dict)):
        return value
    if depth <= 0:
        return _first_scalar(value)
    if isinstance(value, list):
        return [item for item in (_clipped(v, depth - 1) for v in value) if item is not _NOTHING]
    members = ((key, _clipped(v, depth - 1)) for key, v in value.items())
    return {key: item for key, item in members if item is not _NOTHING}


_NOTHING = object()


def _first_scalar(value: Any) -> Any:
    """The first scalar in ``value`` (depth first), or ``_NOTHING``."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending += reversed(item)
        elif isinstance(item, dict):
            pending += reversed(list(item.values()))
        else:
            return item
    return _NOTHING


def invalid_json_texts() -> st.SearchStrategy[str]:
    """JSON texts jsonb must refuse: a ``\\u0000`` escape, a lone surrogate, numbers beyond
    numeric's range, and the usual non-JSON (NaN, trailing commas, single quotes)."""
    return st.one_of(
        st.text(_JSON_CHARS, max_size=8).map(lambda s: json.dumps(s)[:-1] + "\\u0000" + '"'),
        st.sampled_from(['{"a": "\\u0000"}', '"\\ud800"', '"\\udc00x"']),
        st.integers(131_073, 400_000).map(lambda n: f"1e{n}"),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "[1,]", "{'a': 1}", '{"a" 1}', "", "tru", "01"]),
    )


def jsonb_objects(
    known_keys: Iterable[str] | None = None,
    values: st.SearchStrategy[Any] | None = None,
    *,
    max_extra_keys: int = 3,
) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects biased towards ``known_keys`` (each present or not), with a few other keys."""
    values = values if values is not None else json_values(max_depth=2)
    known = {key: values for key in (known_keys or ())}
    extra = st.dictionaries(st.text(_JSON_CHARS, max_size=12), values, max_size=max_extra_keys)
    return st.builds(lambda fixed, more: {**more, **fixed}, st.fixed_dictionaries({}, optional=known), extra)


# -- constraint analysis ---------------------------------------------------------------


@dataclass
class KeyShape:
    """What a CHECK constraint says about one key of the JSON object."""

    literals: list[Any] = field(default_factory=list)
    bounds: list[float] = field(default_factory=list)
    length_bounds: list[int] = field(default_factory=list)
    types: set[str] = field(default_factory=set)  # jsonb_typeof() names it compares with


@dataclass
class ConstraintShape:
    column: str
    keys: dict[str, KeyShape] = field(default_factory=dict)
    top_types: set[str] = field(default_factory=set)  # jsonb_typeof(column) = '…'
    top_bounds: list[float] = field(default_factory=list)


def _tokens(definition: str) -> list[tuple[Any, str]]:
    return [(t, v) for t, v in _lexer.tokenize(definition) if t not in T.Whitespace and t not in T.Newline]


def analyse_checks(definitions: Sequence[str], column: str) -> ConstraintShape:
    """The keys, literal sets, bounds and jsonb types the CHECK definitions mention."""
    shape = ConstraintShape(column)
    for definition in definitions:
        tokens = _tokens(definition)
        current: KeyShape | None = None  # the key the tokens since its mention talk about
        for i, (ttype, value) in enumerate(tokens):
            nxt = tokens[i + 1] if i + 1 < len(tokens) else (None, "")
            after = tokens[i + 2] if i + 2 < len(tokens) else (None, "")
            if ttype in T.Name and value.strip('"') == column and nxt[1] in ("->", "->>", "?", "?|", "?&", "#>", "#>>"):
                if after[0] is not None and after[0] in T.String:
                    key = after[1][1:-1].replace("''", "'")
                    current = shape.keys.setdefault(key, KeyShape())
                    continue
            if ttype in T.String:
                if i >= 2 and tokens[i - 1][1] in ("->", "->>", "?") and tokens[i - 2][1].strip('"') == column:
                    continue  # the key itself
                text = value[1:-1].replace("''", "'")
                typed = nxt[1] == "::" and after[1].lower() in ("jsonb", "json")
                literal: Any = _json_or_text(text) if typed else text
                segment = [v.lower() for _, v in tokens[max(0, i - 12) : i]]
                if text in _JSONB_TYPES and "jsonb_typeof" in segment:
                    (current.types if current else shape.top_types).add(text)
                elif current is not None:
                    current.literals.append(literal)
            elif ttype in T.Number and i >= 1:
                number = float(value)
                before = [v for _, v in tokens[max(0, i - 3) : i]]
                if not any(v in ("<", "<=", ">", ">=", "=", "<>", "!=") for v in before):
                    continue
                window = [v.lower() for _, v in tokens[max(0, i - 12) : i]]
                target = current
                if target is None:
                    shape.top_bounds.append(number)
                elif _LENGTH_FUNCTIONS & set(window):
                    target.length_bounds.append(int(number))
                else:
                    target.bounds.append(number)
    return shape


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- targeted strategies ------------------------------------------------------------------


def near_misses(value: Any) -> list[Any]:
    """Values that look like ``value`` and are not it."""
    if not isinstance(value, str) or not value:
        return [str(value)] if not isinstance(value, str) else [" "]
    misses = {value.upper(), value.capitalize(), f" {value}", f"{value} ", value[:-1], value + value[-1], ""}
    for latin, other in _LOOK_ALIKES.items():
        if latin in value:
            misses.add(value.replace(latin, other, 1))
    misses.discard(value)
    return sorted(misses)


def _strings_of_length(n: int) -> st.SearchStrategy[str]:
    """Strings at and around ``n``: in ASCII, ``n - 1`` to ``n + 1`` characters; in characters
    of two to four UTF-8 bytes, as many characters as put the byte length around ``n`` —
    where a limit in bytes and a limit in characters disagree."""
    def chars(width: int) -> st.SearchStrategy[str]:
        low, high = _BYTES[width]
        return st.characters(min_codepoint=low, max_codepoint=high, blacklist_categories=("Cs",))

    ascii_ = st.text(chars(1), min_size=max(0, n - 1), max_size=n + 1)
    wide = st.sampled_from([2, 3, 4]).flatmap(
        lambda w: st.integers(max(1, n // w - 1), n + 1).flatmap(lambda k: st.text(chars(w), min_size=k, max_size=k))
    )
    return weighted([(ascii_, 1), (wide, 3)])


def _around(bound: float) -> list[Any]:
    """Numbers at and around a bound, and the strings that only look like numbers."""
    b = int(bound) if float(bound).is_integer() else bound
    return [b, b - 1, b + 1, b - 0.5, b + 0.5, b - 1e-9, b + 1e-9, -b if b else -1, 0, str(b), "", f"{b}ms", "NaN"]


def type_confusion() -> st.SearchStrategy[Any]:
    """A value of every JSON type: string for number, number for string, bool, null, …"""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-10, 10),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(_JSON_CHARS, max_size=6),
        st.lists(json_scalars(), max_size=2),
        st.dictionaries(st.text(_JSON_CHARS, max_size=4), json_scalars(), max_size=2),
    )


def key_values(shape: KeyShape) -> st.SearchStrategy[Any]:
    aimed: list[st.SearchStrategy[Any]] = []
    if shape.literals:
        aimed.append(st.sampled_from(shape.literals))
        misses = [m for v in shape.literals for m in near_misses(v)]
        if misses:
            aimed.append(st.sampled_from(misses))
    for bound in shape.bounds:
        aimed.append(st.sampled_from(_around(bound)))
        aimed.append(st.integers(int(bound) - 3, int(bound) + 3))
    for n in shape.length_bounds:
        aimed.append(_strings_of_length(n))
    # type confusion (a string where a number belongs...) is where casts raise: a fair share
    return weighted([(strategy, 3) for strategy in aimed] + [(type_confusion(), 2)])


def weighted(choices: Sequence[tuple[st.SearchStrategy[Any], int]]) -> st.SearchStrategy[Any]:
    """Pick among strategies in proportion to their weights, shrinking towards the first.

    ``one_of`` picks its branches evenly but flattens a nested ``one_of`` into its branches;
    mapping each choice keeps it one branch, and repeating it gives it its weight."""
    return st.one_of(*[strategy.map(_same) for strategy, weight in choices for _ in range(weight)])


def _same(value: Any) -> Any:
    return value


def strategy_for(shape: ConstraintShape) -> st.SearchStrategy[Any]:
    """SQL NULL first (the simplest, so shrinking ends there when it is the culprit), then
    objects aimed at the keys — mostly one key at a time, the others absent or valid, so that
    one bad value is not hidden behind another — a broad fallback, and JSON that is not an
    object."""
    targeted = {key: key_values(key_shape) for key, key_shape in sorted(shape.keys.items())}
    valid = {key: st.sampled_from(k.literals) for key, k in sorted(shape.keys.items()) if k.literals}
    extra = st.dictionaries(st.text(_JSON_CHARS, max_size=8), json_scalars(), max_size=2)
    choices: list[tuple[st.SearchStrategy[Any], int]] = [(st.just(SQL_NULL), 1)]
    if targeted:
        one_key = st.sampled_from(sorted(targeted)).flatmap(
            lambda key: st.builds(
                lambda rest, value: {**rest, key: value},
                st.fixed_dictionaries({}, optional={k: v for k, v in valid.items() if k != key}),
                targeted[key],
            )
        )
        all_keys = st.builds(
            lambda more, fixed: {**more, **fixed}, extra, st.fixed_dictionaries({}, optional=targeted)
        )
        choices += [(one_key, 6), (all_keys, 3)]
    choices += [(jsonb_objects(shape.keys, json_values(max_depth=2)), 1)]
    choices += [(st.sampled_from(_around(b)), 1) for b in shape.top_bounds]
    choices += [(json_values(max_depth=2), 2)]
    return weighted(choices)


def payloads_for(rls: Rls, table: str, column: str) -> st.SearchStrategy[Any]:
    """A strategy aimed at the CHECK constraints of ``table.column`` (read from the catalog)."""
    rel = rls.relation(table)
    definitions = [c.definition for c in rel.checks() if column in c.columns]
    return strategy_for(analyse_checks(definitions, column))

