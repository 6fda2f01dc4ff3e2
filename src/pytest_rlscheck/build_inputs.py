"""What a template build reads besides the text of its files, for the template cache:
files the server reads (their contents cannot be in a key), and the clock (rows written
with it are as old as the build).

Read from the sources' text with their comments blanked out (:func:`.sqlsplit.code_only`),
function bodies included: a trigger that stamps ``now()`` on a seeded row reads the clock
at build time too. Both answers err on the side of saying yes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .sqlsplit import code_only

__all__ = ["CLOCK_ROWS_SQL", "reads_clock", "reads_server_files"]

#: ``COPY … FROM 'file'``, and the functions that read a file on the server's host.
_SERVER_FILES = re.compile(
    r"\bcopy\b[^;]*?\bfrom\s+(?:program\s+)?'|\b(?:pg_read_file|pg_read_binary_file|lo_import|pg_stat_file)\s*\(",
    re.I | re.S,
)
#: The clock, however it is spelled in SQL.
_CLOCK = re.compile(
    r"\b(?:now|clock_timestamp|statement_timestamp|transaction_timestamp|timeofday)\s*\(|"
    r"\b(?:current_timestamp|current_date|current_time|localtimestamp|localtime)\b|'(?:now|today|tomorrow|yesterday)'",
    re.I,
)
#: Whether the built template holds any row outside the system catalogs (after ANALYZE).
CLOCK_ROWS_SQL = (
    "select exists (select from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
    " where c.relkind in ('r', 'p', 'm') and c.reltuples > 0"
    " and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast'))"
)


def reads_server_files(texts: Iterable[str]) -> bool:
    """Whether any of ``texts`` has the server read a file (``COPY … FROM 'path'``,
    ``pg_read_file``...): the file's contents are no part of the sources' text."""
    return any(_SERVER_FILES.search(code_only(text)) for text in texts)


def reads_clock(texts: Iterable[str]) -> bool:
    """Whether any of ``texts`` names the clock (``now()``, ``current_timestamp``,
    ``'now'``...), in a statement, a default or a function body."""
    return any(_CLOCK.search(code_only(text)) for text in texts)
