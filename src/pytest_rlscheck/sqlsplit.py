"""Split a SQL file into statements the way psql does, keeping exact source positions.

Statement boundaries come from a small PostgreSQL-aware scanner: ``sqlparse.split`` is
wrong for two things migrations contain (nested ``/* /* */ */`` comments, and a backslash
at the end of a standard string such as ``'C:\\'``). The same scanner then gives each
statement's leading keywords, which decide what must run outside a transaction.

Dumps load too, as psql reads them: ``COPY ... FROM stdin;`` takes the lines after it, up
to a line ``\\.``, as its data (:attr:`Statement.copy_data`); the ``\\restrict <key>`` /
``\\unrestrict <key>`` lines that pg_dump 17.6, 16.10, 15.14 and later write around a dump
are skipped (they only guard psql against a malicious dump's meta-commands, and no other
meta-command runs here). ``\\connect`` (pg_dump --create, pg_dumpall) and every other
meta-command are refused with their position.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache


__all__ = ["code_only", "MetaCommandError", "SourceText", "SplitError", "Statement", "dollar_bodies", "split", "tokens"]


#: How much of a statement's head sqlparse reads to classify it, and how many of its words
#: (every classification looks at the first few: ``ALTER TABLE … DETACH PARTITION …
#: CONCURRENTLY`` is the longest, at seven).
_HEAD_CHARS = 600
_HEAD_WORDS = 24


class SplitError(ValueError):
    """The file cannot be split into statements; ``line``/``column`` say where (1-based)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        self.line = line
        self.column = column
        super().__init__(message)


#: psql's meta-commands that switch database: pg_dump --create and pg_dumpall write them.
_CONNECT = ("\\c", "\\connect")
#: Skipped: pg_dump's guard against meta-commands in a dump (psql 17.6/16.10/15.14 and later).
_RESTRICT = ("\\restrict", "\\unrestrict")


class MetaCommandError(SplitError):
    """A psql meta-command (``\\i``, ``\\set``...) where only SQL can run."""

    def __init__(self, command: str, line: int, column: int) -> None:
        self.command = command
        if command in _CONNECT:
            advice = (
                "it switches to another database, as pg_dump --create (-C) and pg_dumpall write it. rlscheck loads "
                "every file into its own test database: dump one database without --create (pg_dump "
                "--schema-only, supabase db dump), or delete the CREATE DATABASE/\\connect lines."
            )
        else:
            advice = (
                "migrations are applied as plain SQL (as the Supabase CLI does), not through psql. Inline the "
                "file or value instead."
            )
        super().__init__(f"psql meta-command '{command}' at line {line}, column {column}: {advice}", line, column)


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
    #: "from" for ``COPY ... FROM STDIN``, "to" for ``COPY ... TO STDOUT``, else None.
    copy: str | None = None
    #: The data lines of a ``COPY ... FROM STDIN`` (without the ``\\.`` line) and the
    #: offset in the file where they start.
    copy_data: str = ""
    copy_data_start: int = 0

    @cached_property
    def keywords(self) -> tuple[str, ...]:
        """The statement's leading words (keywords and unquoted names), upper-cased, and its
        parentheses, as :func:`tokens` scans them: comments, strings, quoted names and
        dollar bodies are no words."""
        words: list[str] = []
        text = self.text[:_HEAD_CHARS]
        for kind, start, end in tokens(text):
            if kind == "word":
                words.append(text[start:end].upper())
            elif kind == "punct" and text[start:end] in "();":
                words.append(text[start:end])
            else:
                continue
            if len(words) >= _HEAD_WORDS:
                break
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


@lru_cache(maxsize=1024)
def code_only(text: str) -> str:
    """``text`` with its comments blanked out, offsets kept (strings and dollar bodies stay:
    what a ``create extension`` or a schema reference inside them does, counts). Kept for
    the texts seen last: the sources are read this way by several callers each."""
    return "".join(" " * (end - start) if kind in ("comment", "block") else text[start:end] for kind, start, end in tokens(text))


def tokens(text: str, start: int = 0) -> Iterator[tuple[str, int, int]]:
    """Yield ``(kind, start, end)`` for each lexical token of ``text``.

    Kinds: space, comment, block (a whole nested ``/* */``), estring, string, quoted
    (identifier), dollar (a whole ``$tag$...$tag$`` string), word, punct, other. ``start``:
    where to begin (a token boundary).
    """
    n = len(text)
    i = start
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
    """Split ``text`` into statements; raise :class:`SplitError` (:class:`MetaCommandError`
    on psql meta-commands)."""
    src = source or SourceText(text)
    statements: list[Statement] = []
    start: int | None = None  # offset of the current statement's first significant char
    paren = 0
    begin_depth = 0
    head_words: list[str] = []  # first words of the statement, for BEGIN ATOMIC tracking
    position = 0
    while position < len(text):
        resume = None  # where to go on after a COPY's data or a skipped meta-command line
        for kind, i, end in tokens(text, position):
            if kind in ("space", "comment", "block"):
                continue
            if kind == "punct" and text[i] == ";":
                if paren == 0 and begin_depth == 0:
                    if start is not None:
                        statement = _statement(src, start, i)
                        if statement.copy == "from":
                            statement, resume = _with_copy_data(src, statement, i + 1)
                        statements.append(statement)
                    start, paren, begin_depth, head_words = None, 0, 0, []
                    if resume is not None:
                        break
                continue
            if kind == "punct" and text[i] == "\\":
                command = re.match(r"\\[^\s\\]*", text[i:]).group(0)  # type: ignore[union-attr]
                if start is None and command in _RESTRICT:
                    newline = text.find("\n", i)
                    resume = len(text) if newline < 0 else newline + 1
                    break
                line, column = src.locate(i)
                raise MetaCommandError(command, line, column)
            if start is None:
                start = i
            if kind == "punct":
                paren = paren + 1 if text[i] == "(" else max(paren - 1, 0)
            elif kind == "word":
                begin_depth = _track_begin_atomic(text[i:end].lower(), head_words, paren, begin_depth)
        else:
            position = len(text)
        if resume is not None:
            position = resume
    if start is not None:
        statement = _statement(src, start, len(text))
        if statement.copy == "from":  # a COPY ending the file without ';' has no data
            statement, _ = _with_copy_data(src, statement, len(text))
        statements.append(statement)
    return statements


def _copy_direction(text: str) -> str | None:
    """"from" for ``COPY ... FROM STDIN``, "to" for ``COPY ... TO STDOUT`` (psql's own
    COPY forms, which feed or print data through the connection), else None."""
    words: list[str] = []
    depth = 0
    for kind, i, end in tokens(text):
        if kind == "punct":
            depth += {"(": 1, ")": -1}.get(text[i], 0)
        elif kind in ("word", "quoted") and depth == 0:
            words.append(text[i:end].lower() if kind == "word" else "")
            if len(words) == 1 and words[0] != "copy":
                return None
            if len(words) >= 3 and (words[-2], words[-1]) in (("from", "stdin"), ("to", "stdout")):
                return words[-2]
    return None


def _with_copy_data(src: SourceText, statement: Statement, after: int) -> tuple[Statement, int]:
    """The statement with the data lines that follow it, up to a line ``\\.`` or the end of
    the file, as psql reads them; and where the file goes on after them."""
    text = src.text
    newline = text.find("\n", after)
    rest = text[after : len(text) if newline < 0 else newline]
    stripped = rest.strip()
    if stripped and not stripped.startswith("--"):
        line, column = src.locate(after + rest.index(stripped[0]))
        raise SplitError(
            f"line {line}, column {column}: text after 'COPY ... FROM stdin;' on its line. Its data starts on the "
            "next line (as psql and pg_dump have it): put what follows the ';' on a line of its own.",
            line,
            column,
        )
    data_start = len(text) if newline < 0 else newline + 1
    position = data_start
    while position < len(text):
        end = text.find("\n", position)
        end = len(text) if end < 0 else end
        if text[position:end].rstrip("\r") == "\\.":
            data = text[data_start:position]
            return _replace(statement, data, data_start), min(end + 1, len(text))
        position = end + 1
    return _replace(statement, text[data_start:], data_start), len(text)


def _replace(statement: Statement, data: str, data_start: int) -> Statement:
    return Statement(statement.text, statement.start, statement.line, statement.column, statement.copy, data, data_start)


def _statement(src: SourceText, start: int, end: int) -> Statement:
    line, column = src.locate(start)
    text = src.text[start:end].rstrip()
    copy = _copy_direction(text) if text[:4].lower() == "copy" else None
    return Statement(text, start, line, column, copy)


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
