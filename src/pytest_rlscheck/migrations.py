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

from .errors import MigrationError
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


def load_files(paths: Sequence[Path], kind: str, rootdir: Path) -> list[SqlFile]:
    files = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        files.append(SqlFile(display=_display_path(path, rootdir), text=text, kind=kind))
    return files


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
    for index, file in enumerate(files):
        source = file.source
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
                if conn.info.transaction_status != TransactionStatus.IDLE and not conn.closed:
                    conn.execute("ROLLBACK")
                raise _failure(file, source, statement, exc, files, index, server) from None
            count += 1
        if conn.info.transaction_status == TransactionStatus.INTRANS:
            conn.execute("COMMIT")
    return ApplyReport(files=len(files), statements=count, seconds=time.perf_counter() - started)


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
