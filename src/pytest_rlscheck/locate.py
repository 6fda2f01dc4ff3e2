"""Where an object was created: the migration file and line, for reports (SARIF)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .migrations import SqlFile
from .sqlsplit import MetaCommandError, split

__all__ = ["creation_sites"]

_NAME = r'((?:"[^"]+"|[\w$]+)(?:\s*\.\s*(?:"[^"]+"|[\w$]+))?)'
_CREATES = (
    re.compile(rf"^create\s+(?:(?:global\s+|local\s+)?(?:temp|temporary|unlogged)\s+)?table\s+(?:if\s+not\s+exists\s+)?{_NAME}", re.I),
    re.compile(rf"^create\s+(?:or\s+replace\s+)?(?:(?:temp|temporary|recursive)\s+)*(?:materialized\s+)?view\s+(?:if\s+not\s+exists\s+)?{_NAME}", re.I),
    re.compile(rf"^create\s+(?:or\s+replace\s+)?(?:function|procedure)\s+{_NAME}", re.I),
)


def _qualify(name: str) -> str:
    parts = [p.strip().strip('"') for p in name.split(".")]
    parts = [p if '"' in name else p.lower() for p in parts]
    return ".".join(parts) if len(parts) == 2 else f"public.{parts[0]}"


def creation_sites(files: Iterable[SqlFile]) -> dict[str, tuple[str, int]]:
    """``schema.name`` → (file, line) of the first statement that created it."""
    sites: dict[str, tuple[str, int]] = {}
    for file in files:
        try:
            statements = split(file.text)
        except MetaCommandError:
            continue
        for statement in statements:
            for pattern in _CREATES:
                m = pattern.match(statement.text)
                if m:
                    sites.setdefault(_qualify(m.group(1)), (file.display, statement.line))
                    break
    return sites
