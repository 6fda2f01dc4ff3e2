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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from .errors import Location, MigrationError
from . import migration_errors as report
from .sqlsplit import SourceText, SplitError, Statement, split

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
    conn: psycopg.Connection[Any],
    files: Sequence[SqlFile],
    *,
    server: str = "the server",
    elevate: Callable[[str], tuple[str, ...] | None] | None = None,
    refuse: Callable[[str], Any] | None = None,
) -> ApplyReport:
    """Run ``files`` in order on an autocommit connection; raise :class:`MigrationError`.

    ``elevate``: for a statement to run as the session's superuser (``SET ROLE NONE`` for
    the statement, then back to the connection's role), as Supabase's supautils runs them
    for ``postgres``, the statements to run after it so too; None for the rest, which run
    as the connection's role. ``refuse``: for a statement the platform refuses (supautils'
    reserved roles), the SQL run in its place, which raises as the platform would."""
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
                f"{report.excerpt(source, exc.line, exc.line, exc.line, exc.column)}\n"
                f"{report.progress(files, index)}",
                location=Location(file.display, exc.line, exc.column),
                sqlstate=None,
            ) from None
        if file.kind == "shim" and _applied_at_once(conn, statements):
            count += len(statements)
            continue
        pending: list[Statement] = []  # applied since the last commit, in this file
        batch: list[tuple[Statement, list[str]]] = []  # plain statements, sent together

        def flush() -> None:
            if batch:
                _run_batch(conn, batch, file, source, files, index, server)
                batch.clear()

        for statement in statements:
            skipped = _skipped(conn, file, source, statement)
            if skipped:
                notes.append(skipped)
                continue
            after = elevate(statement.text) if elevate is not None else None
            refused = refuse(statement.text) if refuse is not None and after is None else None
            control = _transaction_control(statement)
            if _batchable(statement, control):
                queries = [statement.text] if refused is None and after is None else (
                    [refused] if refused is not None else [ELEVATE_SQL, statement.text, *after, BACK_SQL]
                )
                if not batch and conn.info.transaction_status == TransactionStatus.IDLE:
                    queries = ["BEGIN", *queries]
                batch.append((statement, queries))
                count += 1
                pending.append(statement)
                continue
            flush()
            status = conn.info.transaction_status
            try:
                if statement.no_transaction:
                    if status != TransactionStatus.IDLE:
                        conn.execute("COMMIT")
                elif status == TransactionStatus.IDLE:
                    conn.execute("BEGIN")
                if refused is not None:
                    conn.execute(refused)
                elif after is not None:
                    conn.execute(ELEVATE_SQL)
                    _execute(conn, statement)
                    for follow_up in after:
                        conn.execute(follow_up)
                    conn.execute(BACK_SQL)
                else:
                    _execute(conn, statement)
            except psycopg.Error as exc:
                if conn.closed or conn.broken:
                    raise report.lost(file, source, statement, exc) from None
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.execute("ROLLBACK")
                raise report.failure(file, source, statement, exc, files, index, server) from None
            count += 1
            if control == "rollback" and pending:
                notes.append(report.discarded(file, source, statement, pending))
            if control in ("rollback", "commit") or statement.no_transaction:
                pending = []
            elif control is None:
                pending.append(statement)
        flush()
        if conn.info.transaction_status == TransactionStatus.INTRANS:
            conn.execute("COMMIT")
    return ApplyReport(files=len(files), statements=count, seconds=time.perf_counter() - started, notes=tuple(notes))


#: ``$1``: a parameter reference, which the extended protocol (a pipeline's) would read as the
#: query's own: such a statement runs on its own, in the simple protocol, as psql sends it.
_PARAMETER = re.compile(r"\$[0-9]")


def _batchable(statement: Statement, control: str | None) -> bool:
    """Whether ``statement`` can go in a pipeline with its neighbours: it runs inside the
    file's transaction, copies nothing, controls no transaction and names no ``$n``."""
    return (statement.copy is None and control is None and not statement.no_transaction
            and not _PARAMETER.search(statement.text))


def _run_batch(
    conn: psycopg.Connection[Any],
    batch: Sequence[tuple[Statement, Sequence[str]]],
    file: SqlFile,
    source: SourceText,
    files: Sequence[SqlFile],
    index: int,
    server: str,
) -> None:
    """The statements of ``batch`` in one pipeline: one round trip for all of them, each
    still a statement of its own (an error names it: the first one without a result is the
    one that failed, or that the server died in). On an error the file's transaction is
    rolled back, as one statement at a time would leave it."""
    sent: list[tuple[Statement, psycopg.Cursor[Any]]] = []
    prepare, conn.prepare_threshold = conn.prepare_threshold, None  # no statement of theirs is kept prepared
    try:
        with conn.pipeline():
            for statement, queries in batch:
                for query in queries:
                    sent.append((statement, conn.execute(query)))  # no parameters: '%' stays as written
    except psycopg.Error as exc:
        at = next((statement for statement, cursor in sent if cursor.pgresult is None), batch[-1][0])
        if conn.closed or conn.broken:
            raise report.lost(file, source, at, exc) from None
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        raise report.failure(file, source, at, exc, files, index, server) from None
    finally:
        if not conn.closed:
            conn.prepare_threshold = prepare


#: For one statement supautils runs as the superuser, and back to the connection's role
#: (``RESET ROLE``: the role the connection was opened with, ``-c role=postgres``).
ELEVATE_SQL = "SET ROLE NONE"
BACK_SQL = "RESET ROLE"


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
