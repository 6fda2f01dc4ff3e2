"""Apply migration and seed files the way the Supabase CLI does, and report failures as
``file:line:col`` with PostgreSQL's own message.

Each file runs in its own transaction. Statements PostgreSQL refuses inside a transaction
block (``CREATE INDEX CONCURRENTLY``, ``VACUUM``...) commit what came before them, run
alone, and the file's transaction resumes after them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from .errors import MigrationError, ServerLost
from .sqlsplit import MetaCommandError, SourceText, Statement, dollar_bodies, split

__all__ = ["ApplyReport", "SqlFile", "apply_files", "load_files"]


@dataclass(frozen=True)
class SqlFile:
    display: str  # the path as people should read it (relative to the project), or a label
    text: str
    kind: str  # "migration", "seed" or "shim"

    def __post_init__(self) -> None:
        if self.text.startswith("\ufeff"):  # a byte-order mark is not SQL
            object.__setattr__(self, "text", self.text[1:])

    @property
    def source(self) -> SourceText:
        return SourceText(self.text)


@dataclass(frozen=True)
class ApplyReport:
    files: int
    statements: int
    seconds: float
    notes: tuple[str, ...] = ()  # things applied as the CLI applies them, worth a warning


def load_files(paths: Sequence[Path], kind: str, rootdir: Path) -> list[SqlFile]:
    files = []
    for path in paths:
        display = _display_path(path, rootdir)
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _not_utf8(display, kind, data, exc) from None
        files.append(SqlFile(display=display, text=text, kind=kind))
    return files


def _not_utf8(display: str, kind: str, data: bytes, exc: UnicodeDecodeError) -> MigrationError:
    before = data[: exc.start]
    line = before.count(b"\n") + 1
    column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
    bad = data[exc.start : exc.end].hex(" ")
    location = f"{display}:{line}:{column}"
    return MigrationError(
        f"{location}: {kind} failed: the file is not UTF-8: byte(s) {bad} at byte offset {exc.start} "
        f"({exc.reason}).\n  The Supabase CLI and PostgreSQL read {kind} files as UTF-8. Save the file as UTF-8 "
        "(e.g. iconv -f latin1 -t utf-8), or replace the character.",
        location=location,
        sqlstate=None,
    )


def _display_path(path: Path, rootdir: Path) -> str:
    """Relative to where pytest runs (clickable in a terminal), else to the project root."""
    for base in (Path.cwd(), rootdir):
        try:
            return str(path.relative_to(base.resolve()))
        except ValueError:
            continue
    return str(path)


def apply_files(
    conn: psycopg.Connection[Any], files: Sequence[SqlFile], *, server: str = "the server"
) -> ApplyReport:
    """Run ``files`` in order on an autocommit connection; raise :class:`MigrationError`."""
    started = time.perf_counter()
    count = 0
    notes: list[str] = []
    for index, file in enumerate(files):
        source = file.source
        if conn.info.transaction_status == TransactionStatus.IDLE:
            # as the CLI does: settings a file changed for the session (pg_dump's
            # set_config('search_path', '', false)) do not carry over into the next one
            conn.execute("RESET ALL")
        try:
            statements = split(file.text, source)
        except MetaCommandError as exc:
            raise MigrationError(
                f"{file.display}:{exc.line}:{exc.column}: {file.kind} failed: {exc}\n"
                f"{_excerpt(source, exc.line, exc.line, exc.line, exc.column)}\n"
                f"{_progress(files, index)}",
                location=f"{file.display}:{exc.line}:{exc.column}",
                sqlstate=None,
            ) from None
        pending: list[Statement] = []  # applied since the last commit, in this file
        for statement in statements:
            status = conn.info.transaction_status
            try:
                if statement.no_transaction:
                    if status != TransactionStatus.IDLE:
                        conn.execute("COMMIT")
                elif status == TransactionStatus.IDLE:
                    conn.execute("BEGIN")
                conn.execute(statement.text)  # no parameters: '%' stays as written
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    raise _lost(file, source, statement, exc) from None
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                raise _failure(file, source, statement, exc, files, index, server) from None
            count += 1
            control = _transaction_control(statement)
            if control == "rollback" and pending:
                notes.append(_discarded(file, source, statement, pending))
            if control in ("rollback", "commit") or statement.no_transaction:
                pending = []
            elif control is None:
                pending.append(statement)
        if conn.info.transaction_status == TransactionStatus.INTRANS:
            conn.execute("COMMIT")
    return ApplyReport(files=len(files), statements=count, seconds=time.perf_counter() - started, notes=tuple(notes))


def _transaction_control(statement: Statement) -> str | None:
    """"rollback" for ROLLBACK/ABORT, "commit" for COMMIT/END (and BEGIN/START, which
    leave what came before in the transaction): the file's own transaction control."""
    words = [w for w in statement.keywords if w not in ("(", ")")]
    if not words or (len(words) > 1 and words[1] in ("TO", "PREPARED")):
        return None  # ROLLBACK TO SAVEPOINT, COMMIT/ROLLBACK PREPARED
    kinds = {"ROLLBACK": "rollback", "ABORT": "rollback", "COMMIT": "commit", "END": "commit", "BEGIN": "begin",
             "START": "begin"}
    return kinds.get(words[0])


def _discarded(file: SqlFile, source: SourceText, statement: Statement, pending: Sequence[Statement]) -> str:
    first, last = pending[0].line, pending[-1].line
    lines = f"line {first}" if first == last else f"lines {first}-{last}"
    return (
        f"{file.display}:{statement.line}:{statement.column}: this ROLLBACK undoes the {len(pending)} statement(s) "
        f"before it in the file ({lines}): they are not applied. The Supabase CLI runs each migration in one "
        "transaction, so `supabase db reset` discards them too; remove the BEGIN/ROLLBACK pair (or the statements) "
        "if they were meant to stay."
    )


def _lost(file: SqlFile, source: SourceText, statement: Statement, exc: psycopg.Error) -> ServerLost:
    line, column = source.locate(statement.start)
    location = f"{file.display}:{line}:{column}"
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
_MISSING_EXTENSION = re.compile(r'extension "([^"]+)" is not available|could not open extension control file "[^"]*/([^/"]+)\.control"')


def _failure(
    file: SqlFile,
    source: SourceText,
    statement: Statement,
    exc: psycopg.Error,
    files: Sequence[SqlFile],
    index: int,
    server: str,
) -> MigrationError:
    diag = exc.diag
    offset, precise = _error_offset(statement, diag)
    line, column = source.locate(offset)
    sqlstate = exc.sqlstate or ""
    message = diag.message_primary or str(exc).strip()
    location = f"{file.display}:{line}:{column}"
    out = [f"{location}: {file.kind} failed: ERROR {sqlstate}: {message}".rstrip()]
    for label, value in (("DETAIL", diag.message_detail), ("HINT", diag.message_hint), ("CONTEXT", diag.context)):
        if value:
            out.append(f"  {label}: " + value.strip().replace("\n", "\n    "))
    missing = _MISSING_EXTENSION.search(f"{message} {diag.message_detail or ''}")
    if missing:
        name = missing.group(1) or missing.group(2)
        out.append(
            f"  rlscheck: the extension {name!r} is not installed on the server in use: {server}.\n"
            f"    Install it there{_install_hint(name, server)}, or point --rlscheck-pg-bin / --rlscheck-dsn "
            "at a server that has it."
        )
    first_line, _ = source.locate(statement.start)
    last_line, _ = source.locate(statement.start + len(statement.text))
    out.append(_excerpt(source, first_line, last_line, line, column if precise else None))
    if statement.no_transaction:
        out.append("  (this statement runs outside a transaction: the file's statements before it stay applied)")
    out.append(_progress(files, index))
    return MigrationError("\n".join(out), location=location, sqlstate=sqlstate or None)


def _error_offset(statement: Statement, diag: Any) -> tuple[int, bool]:
    """Offset in the file of the error, and whether it is precise (worth a caret)."""
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


def _excerpt(source: SourceText, first: int, last: int, error_line: int, column: int | None) -> str:
    """The statement's lines (at most a window around the error), the error line marked."""
    first = max(first, error_line - 3)
    last = min(max(last, error_line), error_line + 3)
    width = len(str(last))
    rows = []
    for number in range(first, last + 1):
        marker = ">" if number == error_line else " "
        rows.append(f"  {marker} {number:>{width}} | {source.line(number)}")
        if number == error_line and column is not None:
            rows.append(f"    {' ' * width} | {' ' * (column - 1)}^")
    return "\n".join(rows)


def _progress(files: Sequence[SqlFile], index: int) -> str:
    kinds = {f.kind for f in files}
    done = index
    label = "files" if len(kinds) > 1 else f"{files[index].kind} files"
    return f"  applied before it: {done} of {len(files)} {label}; nothing after it ran."


_DEBIAN_NAMES = {"vector": "pgvector", "postgis": "postgis-3", "pg_cron": "cron", "pg_partman": "partman"}


def _install_hint(extension: str, server: str) -> str:
    """A package to install, when the server is Debian's (/usr/lib/postgresql/<major>/bin)."""
    m = re.search(r"/usr/lib/postgresql/(\d+)/bin", server)
    if not m:
        return ""
    package = f"postgresql-{m.group(1)}-{_DEBIAN_NAMES.get(extension, extension.replace('_', '-'))}"
    # only when apt knows the server's own package are its lists worth believing
    if _apt_knows(f"postgresql-{m.group(1)}") and _apt_knows(package) is False:
        return (
            f" ({package} is not in this system's package lists: it comes from the PostgreSQL Apt repository, "
            "apt.postgresql.org, or is built from the extension's source)"
        )
    return f" (Debian/Ubuntu: apt-get install {package})"


def _apt_knows(package: str) -> bool | None:
    """Whether apt has a candidate for ``package``; None when apt cannot tell."""
    apt_cache = shutil.which("apt-cache")
    if apt_cache is None:
        return None
    try:
        out = subprocess.run(
            [apt_cache, "policy", package],
            capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"},
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"Candidate:\s*(\S+)", out)
    return bool(m and m.group(1) != "(none)")
