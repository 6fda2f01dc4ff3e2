"""What the access matrix is compared with: the snapshot file, or the migrations at a git
revision (``--rlscheck-compare``), measured on a second template of the same server.

The comparison itself is the ``access-changed`` rule's (:mod:`.rules.access_changed`); this
module finds its baseline, once per run (under pytest-xdist the controller measures the
revision and hands the result to the workers as JSON), and writes the snapshot when the run
accepts what it measured (``--rlscheck-snapshot-update``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .access import RelationAccess, Snapshot
from .config import Settings
from .errors import RlscheckError

if TYPE_CHECKING:
    from .session import RlsSession

__all__ = ["COMPARE_KEY", "DEFAULT_SNAPSHOT", "SnapshotPlan", "compare_baseline", "measured_at", "write_snapshot"]

#: Where the snapshot lives when ``snapshot`` is not configured: beside the migrations.
DEFAULT_SNAPSHOT = "supabase/rlscheck-access.json"


@dataclass(frozen=True)
class SnapshotPlan:
    """What this run does with the access matrix: compare with the snapshot file (``path``,
    when it exists), write it (``update``), or compare with a git revision (``compare``)."""

    path: Path | None
    update: bool = False
    compare: str | None = None
    configured: bool = False  # the path was configured (or given), not the default

    @classmethod
    def of(cls, settings: Settings, *, update: bool, compare: str | None) -> SnapshotPlan:
        if compare and update:
            raise RlscheckError("--rlscheck-compare compares with a revision and writes nothing: drop "
                                "--rlscheck-snapshot-update, or the comparison")
        if settings.snapshot is not None:
            return cls(settings.snapshot, update, compare or None, True)
        return cls(settings.rootdir / DEFAULT_SNAPSHOT, update, compare or None, False)

    @property
    def active(self) -> bool:
        """Whether the sweep gets access-changed checks."""
        return bool(self.compare or self.update or (self.path is not None and self.path.is_file()))

    def shown_path(self, rootdir: Path) -> str:
        assert self.path is not None
        try:
            return str(self.path.relative_to(rootdir))
        except ValueError:
            return str(self.path)

    def file_baseline(self, rootdir: Path) -> Snapshot | None:
        """The snapshot file's content (empty when it is to be written for the first time);
        None when there is nothing to compare with."""
        if self.path is None:
            return None
        shown = self.shown_path(rootdir)
        found = Snapshot.read(self.path)
        if found is not None:
            return Snapshot(found.relations, shown)
        return Snapshot({}, shown) if self.update else None


def measured_at(main: RlsSession, settings: Settings, rev: str) -> Snapshot:
    """The access matrix with the migrations as they are at ``rev``: their files read with
    git into a temporary directory, a second template built from them on the server of the
    ``main`` session, swept, and dropped again."""
    from .compare import session_at, settings_at  # git and the second template
    from .sweep import Sweep

    with tempfile.TemporaryDirectory(prefix="rlscheck-compare-") as into:
        at = settings_at(settings, rev, Path(into))
        other = session_at(main, at)
        try:
            sweep = Sweep(other)
            try:
                sweep.prepare()
                rows = sweep.access_rows()
            finally:
                sweep.close()  # its connection goes before the session drops the databases
        finally:
            other.close()
    return Snapshot.of(rows, f"git {rev}")


#: Where the revision's matrix travels to the xdist workers (``workerinput``).
COMPARE_KEY = "rlscheck_compare"


def compare_baseline(session: RlsSession, rev: str) -> dict[str, str | None]:
    """The matrix at ``rev`` as plain data for the workers: ``{"snapshot": json}`` or
    ``{"error": why}`` (a revision git does not know, a migration that fails there)."""
    try:
        return {"snapshot": measured_at(session, session.settings, rev).to_json(), "error": None}
    except RlscheckError as exc:
        return {"snapshot": None, "error": f"--rlscheck-compare={rev}: {exc.render()}"}


def write_snapshot(path: Path, rows: Iterable[RelationAccess], removed: Iterable[str]) -> tuple[int, int]:
    """Write the snapshot with the rows measured now (relations not measured in this run
    keep theirs; ``removed`` go): (relations in the file, relations whose access changed).
    Written to a temporary file first and moved over the old one: never half-written."""
    old = Snapshot.read(path) or Snapshot({})
    new = old.merged(rows, removed)
    changed = sum(1 for name in {*old.relations, *new.relations} if old.relations.get(name) != new.relations.get(name))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".rlscheck-access-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(new.to_json())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)  # a file to commit, as any other the user writes
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(new.relations), changed
