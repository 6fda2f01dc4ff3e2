"""Split a SQL file into statements the way psql does, keeping exact source positions.

Statement boundaries come from a small PostgreSQL-aware scanner: ``sqlparse.split`` is
wrong for two things migrations contain (nested ``/* /* */ */`` comments, and a backslash
at the end of a standard string such as ``'C:\\'``). sqlparse then classifies each
statement from its leading keywords, which decides what must run outside a transaction.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from sqlparse import lexer as _sqlparse_lexer
from sqlparse import tokens as _T

__all__ = ["MetaCommandError", "SourceText", "Statement", "dollar_bodies", "split", "tokens"]


#: How much of a statement's head sqlparse reads to classify it.
_HEAD_CHARS = 600


class MetaCommandError(ValueError):
    """A psql meta-command (``\\i``, ``\\set``...) where only SQL can run."""

    def __init__(self, command: str, line: int, column: int) -> None:
        self.command = command
        self.line = line
        self.column = column
        super().__init__(
            f"psql meta-command '{command}' at line {line}, column {column}: migrations are "
            "applied as plain SQL (as the Supabase CLI does), not through psql. Inline the "
            "file or value instead."
        )


class SourceText:
    """A file's text with a fast offset -> (line, column) map (both 1-based)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def locate(self, offset: int) -> tuple[int, int]:
        index = bisect.bisect_right(self._line_starts, offset) - 1
        return index + 1, offset - self._line_starts[index] + 1

    def line(self, number: int) -> str:
        start = self._line_starts[number - 1]
        end = self._line_starts[number] - 1 if number < len(self._line_starts) else len(self.text)
        return self.text[start:end]


@dataclass(frozen=True)
class Statement:
    """One statement of a file: its exact text (no terminating ``;``) and where it starts."""

    text: str
    start: int
    line: int
    column: int

    @cached_property
    def keywords(self) -> tuple[str, ...]:
        """The statement's leading words, upper-cased, as sqlparse tokenises them."""
        words: list[str] = []
        for ttype, value in _sqlparse_lexer.tokenize(self.text[:_HEAD_CHARS]):
            if ttype in _T.Keyword or ttype in _T.Name:
                words.append(value.upper())
            elif ttype in _T.Punctuation and value in "();":
                words.append(value)
        return tuple(words)

    @property
    def no_transaction(self) -> bool:
        """True for statements PostgreSQL refuses inside a transaction block."""
        return _runs_outside_transaction(self.keywords)


def _runs_outside_transaction(words: tuple[str, ...]) -> bool:
    if not words:
        return False
    head = [w for w in words if w not in ("(", ")")]
    first = head[0]
    second = head[1] if len(head) > 1 else ""
    if first == "VACUUM" or first == "ALTER" and second == "SYSTEM":
        return True
    if first in ("CREATE", "DROP") and second in ("DATABASE", "TABLESPACE", "SUBSCRIPTION"):
        return True
    if first == "ALTER" and second == "SUBSCRIPTION":
        return True
    if first == "ALTER" and second == "DATABASE":
        return "TABLESPACE" in head
    if first in ("COMMIT", "ROLLBACK") and second == "PREPARED":
        return True
    if first == "CLUSTER":
        return len(head) == 1 or head[1:] == ["VERBOSE"]
    if first == "CREATE" and "INDEX" in head[1:3]:
        return head[head.index("INDEX") + 1 : head.index("INDEX") + 2] == ["CONCURRENTLY"]
    if first == "DROP" and second == "INDEX":
        return "CONCURRENTLY" in head[2:3]
    if first == "REINDEX":
        return "CONCURRENTLY" in head or second in ("SYSTEM", "DATABASE")
    if first == "ALTER" and second == "TABLE" and "DETACH" in head:
        return "CONCURRENTLY" in head[head.index("DETACH") :]
    return False


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*)
  | (?P<block>/\*)
  | (?P<estring>[Ee]'[^'\\]*(?:(?:\\.|'')[^'\\]*)*(?:'|\Z))
  | (?P<string>'[^']*(?:''[^']*)*(?:'|\Z))
  | (?P<quoted>"[^"]*(?:""[^"]*)*(?:"|\Z))
  | (?P<dollar>\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$)
  | (?P<word>[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*)
  | (?P<punct>[;()\\])
  | (?P<other>[^\sA-Za-z_\u0080-\uffff;()'"$\\/-]+|.)
    """,
    re.VERBOSE | re.DOTALL,
)
_COMMENT_EDGE = re.compile(r"/\*|\*/")


def tokens(text: str) -> Iterator[tuple[str, int, int]]:
    """Yield ``(kind, start, end)`` for each lexical token of ``text``.

    Kinds: space, comment, block (a whole nested ``/* */``), estring, string, quoted
    (identifier), dollar (a whole ``$tag$...$tag$`` string), word, punct, other.
    """
    n = len(text)
    i = 0
    while i < n:
        m = _TOKEN.match(text, i)
        assert m is not None  # the last alternative matches any character
        kind = m.lastgroup or "other"
        end = m.end()
        if kind == "block":
            end = _block_comment_end(text, i)
        elif kind == "dollar":
            close = text.find(m.group(0), end)
            end = n if close < 0 else close + len(m.group(0))
        yield kind, i, end
        i = end


def _block_comment_end(text: str, i: int) -> int:
    depth = 0
    for m in _COMMENT_EDGE.finditer(text, i):
        depth += 1 if m.group(0) == "/*" else -1
        if depth == 0:
            return m.end()
    return len(text)


def split(text: str, source: SourceText | None = None) -> list[Statement]:
    """Split ``text`` into statements; raise :class:`MetaCommandError` on psql meta-commands."""
    src = source or SourceText(text)
    statements: list[Statement] = []
    start: int | None = None  # offset of the current statement's first significant char
    paren = 0
    begin_depth = 0
    head_words: list[str] = []  # first words of the statement, for BEGIN ATOMIC tracking

    for kind, i, end in tokens(text):
        if kind in ("space", "comment", "block"):
            continue
        if kind == "punct" and text[i] == ";":
            if paren == 0 and begin_depth == 0:
                if start is not None:
                    statements.append(_statement(src, start, i))
                start, paren, begin_depth, head_words = None, 0, 0, []
            continue
        if start is None:
            start = i
        if kind == "punct":
            char = text[i]
            if char == "\\":
                line, column = src.locate(i)
                raise MetaCommandError(re.match(r"\\\S*", text[i:]).group(0), line, column)  # type: ignore[union-attr]
            paren = paren + 1 if char == "(" else max(paren - 1, 0)
        elif kind == "word":
            begin_depth = _track_begin_atomic(text[i:end].lower(), head_words, paren, begin_depth)
    if start is not None:
        statements.append(_statement(src, start, len(text)))
    return statements


def _statement(src: SourceText, start: int, end: int) -> Statement:
    line, column = src.locate(start)
    return Statement(src.text[start:end].rstrip(), start, line, column)


def _track_begin_atomic(word: str, head: list[str], paren: int, depth: int) -> int:
    """psql's heuristic: inside CREATE [OR REPLACE] FUNCTION|PROCEDURE, BEGIN..END nests."""
    if len(head) < 4:
        head.append(word)
    routine = head[:2] in (["create", "function"], ["create", "procedure"]) or (
        head[:3] == ["create", "or", "replace"] and head[3:4] in (["function"], ["procedure"])
    )
    if not routine or paren:
        return depth
    if word == "begin":
        return depth + 1
    if word == "case" and depth:
        return depth + 1
    if word == "end" and depth:
        return depth - 1
    return depth


def dollar_bodies(text: str) -> list[tuple[int, str]]:
    """(offset of the body in ``text``, body) for each dollar-quoted string of ``text``."""
    found = []
    for kind, i, end in tokens(text):
        if kind == "dollar":
            tag_len = text.index("$", i + 1) + 1 - i
            body_end = end - tag_len if end - i >= 2 * tag_len else end
            found.append((i + tag_len, text[i + tag_len : body_end]))
    return found
