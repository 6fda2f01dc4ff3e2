"""Apply migration and seed files the way the Supabase CLI does, and report failures as
``file:line:col`` with PostgreSQL's own message.

Each file runs in its own transaction. Statements PostgreSQL refuses inside a transaction
block (``CREATE INDEX CONCURRENTLY``, ``VACUUM``...) commit what came before them, run
alone, and the file's transaction resumes after them.

Dumps are sources too (``pg_dump``, ``supabase db dump``): ``COPY ... FROM stdin`` runs with
its data lines (an error in a row is reported at that row's line), the ``\\restrict`` lines
are skipped (:mod:`.sqlsplit`), and the header's session settings end with the file.
``SET transaction_timeout = 0``, which pg_dump 17 and later writes, is skipped on a server
that has no such setting (before PostgreSQL 17), with a note; see :func:`_skipped`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from .errors import Location, MigrationError, ServerLost
from .extensions import MISSING_EXTENSION
from .install_hints import package_hint
from .sqlsplit import SourceText, SplitError, Statement, dollar_bodies, split

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
    location = Location(display, line, column)
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
            _reset_session(conn)
        try:
            statements = split(file.text, source)
        except SplitError as exc:
            raise MigrationError(
                f"{file.display}:{exc.line}:{exc.column}: {file.kind} failed: {exc}\n"
                f"{_excerpt(source, exc.line, exc.line, exc.line, exc.column)}\n"
                f"{_progress(files, index)}",
                location=Location(file.display, exc.line, exc.column),
                sqlstate=None,
            ) from None
        if file.kind == "shim" and _applied_at_once(conn, statements):
            count += len(statements)
            continue
        pending: list[Statement] = []  # applied since the last commit, in this file
        for statement in statements:
            skipped = _skipped(conn, file, source, statement)
            if skipped:
                notes.append(skipped)
                continue
            status = conn.info.transaction_status
            try:
                if statement.no_transaction:
                    if status != TransactionStatus.IDLE:
                        conn.execute("COMMIT")
                elif status == TransactionStatus.IDLE:
                    conn.execute("BEGIN")
                _execute(conn, statement)
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


def _applied_at_once(conn: psycopg.Connection[Any], statements: Sequence[Statement]) -> bool:
    """A file of plain statements (no COPY, nothing that must run outside a transaction,
    no transaction control, nothing skipped) in one round trip, in one transaction: what
    the per-statement path would do, at half its cost. False when the file is not plain,
    or when it failed — rolled back, for the per-statement path to run it again and report
    the statement at fault precisely. Used for the shim's own files: for the user's, a
    server that dies mid-file must be reported at the statement it died on, which one
    batch cannot tell."""
    if not statements or conn.info.transaction_status != TransactionStatus.IDLE:
        return False
    for statement in statements:
        if statement.copy is not None or statement.no_transaction or _transaction_control(statement) is not None:
            return False
        if conn.info.server_version < 170000 and _TRANSACTION_TIMEOUT_OFF.match(statement.text):
            return False
    try:
        conn.execute("BEGIN")
        conn.execute("\n;\n".join(statement.text for statement in statements))  # simple protocol: no '%' parsing
        conn.execute("COMMIT")
    except psycopg.Error:
        if conn.closed or conn.broken:
            return False  # the per-statement path reports the lost server
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        return False
    return True


def _reset_session(conn: psycopg.Connection[Any]) -> None:
    """Each file starts with the session as it was at connection time.

    RESET ALL is what the Supabase CLI runs before each migration: settings a file changed
    for the session (a dump header's ``set_config('search_path', '', false)``, ``SET
    check_function_bodies = false``, ``SET row_security = off``...) do not carry over into
    the next one. RESET ALL leaves the role alone, so a file's ``SET ROLE`` or ``SET SESSION
    AUTHORIZATION`` (pg_dump --use-set-session-authorization) ends with it too, here: the
    next file, the seed and the build's ANALYZE run as the user that connected. (The CLI
    would run the next migration under that role; no project depends on that on purpose.)
    """
    conn.execute("RESET ALL")
    row = conn.execute("select current_user, session_user").fetchone()
    if row is None or row[0] != row[1] or row[1] != conn.info.user:
        conn.execute("RESET SESSION AUTHORIZATION")
        conn.execute("RESET ROLE")


def _execute(conn: psycopg.Connection[Any], statement: Statement) -> None:
    if statement.copy is None:
        conn.execute(statement.text)  # no parameters: '%' stays as written
        return
    with conn.cursor() as cursor:
        with cursor.copy(statement.text) as copy:  # type: ignore[arg-type]  # as written, too
            if statement.copy == "from":
                if statement.copy_data:
                    copy.write(statement.copy_data)
            else:  # COPY ... TO STDOUT: psql would print it; nobody reads it here
                for _ in copy:
                    pass


#: pg_dump 17+ writes this in every dump's header; PostgreSQL before 17 has no such setting.
_TRANSACTION_TIMEOUT_OFF = re.compile(
    r"set\s+(?:session\s+)?transaction_timeout\s*(?:=|\bto\b)\s*(?:0|'0')\s*\Z", re.I
)


def _skipped(conn: psycopg.Connection[Any], file: SqlFile, source: SourceText, statement: Statement) -> str | None:
    """A note when ``statement`` is not run, else None.

    ``SET transaction_timeout = 0`` on a server before PostgreSQL 17: a dump from pg_dump 17
    or later (a Supabase project on PostgreSQL 17, a newer client) loaded into PostgreSQL 15.
    The value turns a timeout off that this server does not have, so skipping it changes
    nothing. psql, with which plain dumps are restored, reports the unknown setting and goes
    on; the Supabase CLI runs each migration as one batch and would fail on it
    (``unrecognized configuration parameter``), which is why ``supabase db dump`` comments
    the line out. Failing here would stop a schema sweep over a line that cannot matter, so
    it is skipped, and the note says the CLI would refuse it. Any other value is a timeout
    someone asked for: it runs, and fails as PostgreSQL says.
    """
    if conn.info.server_version >= 170000 or not _TRANSACTION_TIMEOUT_OFF.match(statement.text):
        return None
    version = conn.info.server_version
    return (
        f"{file.display}:{statement.line}:{statement.column}: skipped `{statement.text}`: PostgreSQL "
        f"{version // 10000} has no transaction_timeout (pg_dump 17 and later write this line; 0 means no timeout, "
        "which is what this server does anyway). `supabase db reset` on this version would fail here "
        "(unrecognized configuration parameter); `supabase db dump` comments the line out."
    )


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
    out.append(_excerpt(source, first_line, last_line, line, column if precise else None))
    if statement.no_transaction:
        out.append("  (this statement runs outside a transaction: the file's statements before it stay applied)")
    if statement.copy == "from" and line > last_line:
        row = line - source.locate(statement.copy_data_start)[0] + 1
        out.append(f"  (row {row} of the data of the COPY at line {first_line})")
    out.append(_progress(files, index))
    return MigrationError("\n".join(out), location=location, sqlstate=sqlstate or None)


#: PostgreSQL's CONTEXT for an error in a row of COPY FROM: ``COPY notes, line 3, column body: "x"``.
_COPY_ROW = re.compile(r"^COPY .*?, line (\d+)(?:, column |: |$)", re.M)


def _error_offset(statement: Statement, diag: Any) -> tuple[int, bool]:
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


def _excerpt(source: SourceText, first: int, last: int, error_line: int, column: int | None) -> str:
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


def _progress(files: Sequence[SqlFile], index: int) -> str:
    kinds = {f.kind for f in files}
    done = index
    label = "files" if len(kinds) > 1 else f"{files[index].kind} files"
    return f"  applied before it: {done} of {len(files)} {label}; nothing after it ran."
