"""What a failed migration is reported as: ``file:line:col`` of the error (in the statement,
in a PL/pgSQL body, in a row of COPY data), PostgreSQL's message with its DETAIL, HINT and
CONTEXT, an excerpt with the line marked, what a missing extension needs, and how far the
files got. :mod:`pytest_rlscheck.migrations` applies; this module words what went wrong."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from .errors import Location, MigrationError, ServerLost
from .extensions import MISSING_EXTENSION
from .install_hints import package_hint
from .sqlsplit import SourceText, Statement, dollar_bodies

if TYPE_CHECKING:
    from .migrations import SqlFile

__all__ = ["discarded", "error_offset", "excerpt", "failure", "lost", "progress"]


def discarded(file: SqlFile, source: SourceText, statement: Statement, pending: Sequence[Statement]) -> str:
    first, last = pending[0].line, pending[-1].line
    lines = f"line {first}" if first == last else f"lines {first}-{last}"
    return (
        f"{file.display}:{statement.line}:{statement.column}: this ROLLBACK undoes the {len(pending)} statement(s) "
        f"before it in the file ({lines}): they are not applied. The Supabase CLI runs each migration in one "
        "transaction, so `supabase db reset` discards them too; remove the BEGIN/ROLLBACK pair (or the statements) "
        "if they were meant to stay."
    )


def lost(file: SqlFile, source: SourceText, statement: Statement, exc: psycopg.Error) -> ServerLost:
    line, column = source.locate(statement.start)
    location = Location(file.display, line, column)
    return ServerLost(
        f"{location}: {file.kind} stopped: the connection to the database server was lost while this statement "
        f"ran ({str(exc).strip()}). This is the server, not the SQL: it died or was shut down.",
        location=location,
    )


_PLPGSQL_FRAME = re.compile(r'(?:compilation of PL/pgSQL function "[^"]*" near|PL/pgSQL function \S+?) line (\d+)')
_INLINE_FRAME = re.compile(
    r'(?:compilation of PL/pgSQL function "inline_code_block" near|PL/pgSQL function inline_code_block) line (\d+)'
)
_ROUTINE_HEAD = re.compile(r"\s*create\s+(or\s+replace\s+)?(function|procedure)\b", re.I)


def failure(
    file: SqlFile,
    source: SourceText,
    statement: Statement,
    exc: psycopg.Error,
    files: Sequence[SqlFile],
    index: int,
    server: str,
) -> MigrationError:
    diag = exc.diag
    offset, precise = error_offset(statement, diag)
    line, column = source.locate(offset)
    sqlstate = exc.sqlstate or ""
    message = diag.message_primary or str(exc).strip()
    location = Location(file.display, line, column)
    out = [f"{location}: {file.kind} failed: ERROR {sqlstate}: {message}".rstrip()]
    for label, value in (("DETAIL", diag.message_detail), ("HINT", diag.message_hint), ("CONTEXT", diag.context)):
        if value:
            out.append(f"  {label}: " + value.strip().replace("\n", "\n    "))
    missing = MISSING_EXTENSION.search(f"{message} {diag.message_detail or ''}")
    if missing:
        name = missing.group(1) or missing.group(2)
        out.append(
            f"  rlscheck: the extension {name!r} is not installed on the server in use: {server}.\n"
            f"    Install it there{package_hint(name, server)}, or point --rlscheck-pg-bin / --rlscheck-dsn "
            "at a server that has it."
        )
    first_line, _ = source.locate(statement.start)
    last_line, _ = source.locate(statement.start + len(statement.text))
    out.append(excerpt(source, first_line, last_line, line, column if precise else None))
    if statement.no_transaction:
        out.append("  (this statement runs outside a transaction: the file's statements before it stay applied)")
    if statement.copy == "from" and line > last_line:
        row = line - source.locate(statement.copy_data_start)[0] + 1
        out.append(f"  (row {row} of the data of the COPY at line {first_line})")
    out.append(progress(files, index))
    return MigrationError("\n".join(out), location=location, sqlstate=sqlstate or None)


#: PostgreSQL's CONTEXT for an error in a row of COPY FROM: ``COPY notes, line 3, column body: "x"``.
_COPY_ROW = re.compile(r"^COPY .*?, line (\d+)(?:, column |: |$)", re.M)


def error_offset(statement: Statement, diag: Any) -> tuple[int, bool]:
    """Offset in the file of the error, and whether it is precise (worth a caret)."""
    row = _COPY_ROW.search(diag.context or "") if statement.copy == "from" else None
    if row:  # line N of the data: the file's line N after the COPY statement's own
        data, position = statement.copy_data, 0
        for _ in range(int(row.group(1)) - 1):
            newline = data.find("\n", position)
            if newline < 0:
                break
            position = newline + 1
        return statement.copy_data_start + position, False
    if diag.statement_position:
        return statement.start + int(diag.statement_position) - 1, True
    context = diag.context or ""
    frame = _INLINE_FRAME.findall(context)
    routine = bool(_ROUTINE_HEAD.match(statement.text))
    if not frame and routine and "compilation of PL/pgSQL function" in context:
        frame = _PLPGSQL_FRAME.findall(context)[:1]
    bodies = dollar_bodies(statement.text)
    if frame and bodies:
        # line N of the body; line 1 starts right after the opening dollar quote
        text = statement.text
        position = bodies[0][0]
        for _ in range(int(frame[-1]) - 1):  # the outermost frame that is this statement's own code
            newline = text.find("\n", position)
            if newline < 0:
                break
            position = newline + 1
        while position < len(text) and text[position] in " \t":
            position += 1
        return statement.start + position, False
    return statement.start, False


#: Lines longer than this (a dump's data rows) are cut in excerpts.
_EXCERPT_WIDTH = 240


def excerpt(source: SourceText, first: int, last: int, error_line: int, column: int | None) -> str:
    """The statement's lines (at most a window around the error), the error line marked."""
    first = max(first, error_line - 3)
    last = min(max(last, error_line), error_line + 3)
    width = len(str(last))
    rows = []
    for number in range(first, last + 1):
        marker = ">" if number == error_line else " "
        text = source.line(number)
        if len(text) > _EXCERPT_WIDTH and (number != error_line or column is None or column <= _EXCERPT_WIDTH):
            text = text[:_EXCERPT_WIDTH] + f" ... ({len(text) - _EXCERPT_WIDTH} more characters)"
        rows.append(f"  {marker} {number:>{width}} | {text}")
        if number == error_line and column is not None:
            rows.append(f"    {' ' * width} | {' ' * (column - 1)}^")
    return "\n".join(rows)


def progress(files: Sequence[SqlFile], index: int) -> str:
    kinds = {f.kind for f in files}
    done = index
    label = "files" if len(kinds) > 1 else f"{files[index].kind} files"
    return f"  applied before it: {done} of {len(files)} {label}; nothing after it ran."
