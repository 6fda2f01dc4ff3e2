"""Which extensions the sources create, which server has them, and which are stood in.

A stand-in is a real extension written here in SQL (``standins/<name>.control`` and its
script), from the public interface of a platform-only extension (``pg_net``,
``supabase_vault``...) or of one a server was built without (``pgcrypto`` in a wheel
without OpenSSL). It is copied into a private copy of the server's installation
(:mod:`.installation`), so ``create extension`` works as on Supabase and
``pg_extension`` lists it; every one in use is named in the report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .binaries import PgBinaries
from .install_hints import install_hint
from .sqlsplit import code_only
from .supabase import created_objects

__all__ = [
    "MISSING_EXTENSION",
    "PART_EXTENSIONS",
    "PREINSTALLED",
    "ExtensionPlan",
    "StandIn",
    "choose_server",
    "implied_extensions",
    "platform_extensions_sql",
    "requested_extensions",
    "stand_ins",
]

#: Extensions every Supabase database has before the first migration; the shim's core
#: part creates them in the ``extensions`` schema.
PREINSTALLED = ("uuid-ossp", "pgcrypto")
#: Extensions a Supabase database has pre-created (in their own schema), which projects use
#: without a ``create extension``, or create ``if not exists`` ``with schema vault`` (which
#: needs the schema): created by the shim when the sources reference them or their schema.
IMPLIED = {"supabase_vault": "vault", "pg_graphql": "graphql"}
#: Shim parts that need an extension: database webhooks send through pg_net (created by the
#: shim unless the sources create it themselves).
PART_EXTENSIONS = {"functions": "pg_net"}
#: Stood in even where the real one is installed, and why.
ALWAYS_STOOD_IN = {
    "pg_cron": "the real pg_cron keeps a connection open to its database, which then cannot be copied for each "
    "worker, and would run the jobs during the tests",
}
#: PostgreSQL's words when ``create extension`` finds no control file.
MISSING_EXTENSION = re.compile(
    r'extension "([^"]+)" is not available|could not open extension control file "[^"]*/([^/"]+)\.control"'
)
_CONTROL = re.compile(r"^\s*(\w+)\s*=\s*'?([^'\n]*)'?\s*$", re.M)
_NOTE = re.compile(r"^#\s*rlscheck:\s*(.+)$", re.M)
_CREATE_EXTENSION = re.compile(
    r'\bcreate\s+extension\s+(?:if\s+not\s+exists\s+)?(?:"((?:[^"]|"")+)"|([a-z_][\w$-]*))', re.I
)


@dataclass(frozen=True)
class StandIn:
    """A stand-in shipped with the package: its files and what it simulates."""

    name: str
    version: str
    note: str  # one sentence: what is simulated ("no HTTP requests are sent")
    requires: tuple[str, ...]
    files: tuple[Path, ...]

    def describe(self) -> str:
        return f"{self.name} — {self.note}"


@dataclass(frozen=True)
class ExtensionPlan:
    """The server chosen for the sources, and what it is missing."""

    binaries: PgBinaries | None  # None on a --rlscheck-dsn server
    requested: Mapping[str, str]  # extension -> where the sources create it ("file:line")
    wanted: tuple[str, ...] = ()  # requested, and what the shim creates as Supabase has it
    stood_in: tuple[StandIn, ...] = ()
    missing: tuple[str, ...] = ()  # neither on the server nor stood in: the migration will fail
    reason: str = ""  # why this server, in words ("" when it is simply the first one found)
    looked_at: tuple[str, ...] = ()  # each server considered, and what it lacked
    stand_ins_on: bool = True

    def header_lines(self) -> list[str]:
        lines = []
        if self.binaries is not None and self.reason:
            lines.append(f"server: PostgreSQL {self.binaries.version} at {self.binaries.bindir}: {self.reason}")
        lines += [f"simulated: {s.describe()}" for s in self.stood_in]
        theirs = [f"{name} ({self.requested[name]})" for name in self.missing if name in self.requested]
        platform = [name for name in self.missing if name not in self.requested]
        if theirs:
            lines.append("not available on any server here, and no stand-in: " + ", ".join(theirs))
        if platform:
            lines.append(
                f"without {', '.join(platform)}: Supabase pre-installs it, no server here has it (stand-ins "
                + ("off)" if not self.stand_ins_on else "none)")
            )
        return lines

    def missing_report(self, name: str) -> str:
        """For the failure of ``create extension name``: every server looked at, what to get."""
        if name in ALWAYS_STOOD_IN:
            why = "stand-ins are off (stand_ins = false)" if not self.stand_ins_on else "it has no stand-in"
            return (
                f"  rlscheck: the real {name} cannot be used here ({ALWAYS_STOOD_IN[name]}), and {why}. Turn "
                "stand-ins on (remove stand_ins = false) to load the project with its stand-in."
            )
        stand_in = "its stand-in is off (stand_ins = false)" if name in stand_ins() else "rlscheck has no stand-in for it"
        lines = [f"  rlscheck: no server here has {name!r}, and {stand_in}. Servers looked at:"]
        lines += [f"    - {entry}" for entry in self.looked_at]
        lines.append(f"  To get it: {install_hint(name, self.binaries.major if self.binaries else None)}")
        return "\n".join(lines)


def stand_ins() -> dict[str, StandIn]:
    """Every stand-in shipped in the package, by extension name."""
    root = resources.files("pytest_rlscheck").joinpath("standins")
    found: dict[str, StandIn] = {}
    directory = Path(str(root))
    if not directory.is_dir():
        return found
    for control in sorted(directory.glob("*.control")):
        text = control.read_text(encoding="utf-8")
        values = dict(_CONTROL.findall(text))
        name = control.name[: -len(".control")]
        note = _NOTE.search(text)
        requires = tuple(r.strip() for r in values.get("requires", "").split(",") if r.strip())
        scripts = tuple(sorted(directory.glob(f"{_glob_escape(name)}--*.sql")))
        found[name] = StandIn(
            name=name,
            version=values.get("default_version", ""),
            note=note.group(1).strip() if note else "a stand-in written from its public interface",
            requires=requires,
            files=(control, *scripts),
        )
    return found


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def requested_extensions(files: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Extensions the sources create, with the first place that does (``file:line``).

    ``files`` are (display name, text) pairs; comments do not count, strings and function
    bodies do (``execute 'create extension ...'``)."""
    found: dict[str, str] = {}
    for display, text in files:
        code = code_only(text)
        for match in _CREATE_EXTENSION.finditer(code):
            name = match.group(1).replace('""', '"') if match.group(1) else match.group(2).lower()
            if name not in found:
                found[name] = f"{display}:{text.count(chr(10), 0, match.start()) + 1}"
    return found


def implied_extensions(texts: Iterable[str], requested: Mapping[str, str]) -> list[str]:
    """Pre-created Supabase extensions the sources use (their schema, or ``create extension
    if not exists``) — unless the sources create that schema themselves (a dump of a
    Supabase database has ``CREATE SCHEMA vault`` and its own ``CREATE EXTENSION``)."""
    texts = list(texts)
    owned = created_objects(texts)
    code = "\n".join(code_only(text) for text in texts)
    out = []
    for name, schema in IMPLIED.items():
        if f"schema {schema}" in owned:
            continue
        if name in requested or re.search(rf'(?<![\w"])"?{schema}"?\s*\.\s*"?[a-z_]', code, re.I):
            out.append(name)
    return out


def choose_server(
    wanted: Sequence[str],
    candidates: Sequence[PgBinaries],
    *,
    requested: Mapping[str, str],
    use_stand_ins: bool = True,
    major: int | None = None,
    available: Mapping[str, StandIn] | None = None,
) -> ExtensionPlan:
    """The candidate that has the most of ``wanted`` for real (a stand-in fills the rest);
    among equals, the ``major`` version asked for, then the first (the usual preference)."""
    shipped = stand_ins() if available is None else dict(available)
    if not use_stand_ins:
        shipped = {}
    wanted = list(dict.fromkeys(wanted))

    def lacks(binaries: PgBinaries) -> list[str]:
        have = binaries.extensions()
        return [name for name in wanted if name not in have or name in ALWAYS_STOOD_IN]

    def score(item: tuple[int, PgBinaries]) -> tuple[int, int, int, int, int]:
        """What the sources create counts before what the shim would add."""
        index, binaries = item
        missing = lacks(binaries)
        unfillable = [name for name in missing if name not in shipped]
        theirs = sum(1 for name in unfillable if name in requested)
        # the major version production runs counts before stand-ins: what passes here passes there
        return (theirs, len(unfillable) - theirs, 0 if major is None or binaries.major == major else 1, len(missing), index)

    ranked = sorted(enumerate(candidates), key=score)
    chosen = ranked[0][1]
    looked_at = []
    for binaries in candidates:
        absent = [name for name in wanted if name not in binaries.extensions()]
        looked_at.append(
            f"{binaries.describe()}: " + (f"lacks {', '.join(absent)}" if absent else "has all of them")
        )
    missing = lacks(chosen)
    stood: dict[str, StandIn] = {}
    unavailable: list[str] = []
    have = chosen.extensions()
    queue = list(missing)
    while queue:  # a stand-in's own requirements, when the server lacks them too
        name = queue.pop(0)
        if name in stood or name in unavailable:
            continue
        if name in shipped and (name not in have or name in ALWAYS_STOOD_IN):
            stood[name] = shipped[name]
            queue += [r for r in shipped[name].requires if r not in have or r in ALWAYS_STOOD_IN]
        elif name not in have:
            unavailable.append(name)
    reason = ""
    asked = [b for b in candidates if major is not None and b.major == major]
    if asked and chosen.major != major:  # [db] major_version lost: say to what
        lacking = [name for name in lacks(asked[0]) if name not in shipped]
        reason = (
            f"chosen over {asked[0].describe()}, which [db] major_version asks for, because that one lacks "
            f"{', '.join(lacking)} (no stand-in)"
        )
    elif chosen is not candidates[0]:  # the usual preference, unless the extensions decide
        first_lacks = set(lacks(candidates[0]))
        real = [name for name in wanted if name in first_lacks and name not in missing]
        if real:
            reason = f"chosen because it has {', '.join(real)}, which {candidates[0].describe()} lacks"
        else:
            reason = "chosen for [db] major_version"
    return ExtensionPlan(
        binaries=chosen,
        requested=dict(requested),
        wanted=tuple(wanted),
        stood_in=tuple(stood[name] for name in sorted(stood)),
        missing=tuple(unavailable),
        reason=reason,
        looked_at=tuple(looked_at),
        stand_ins_on=use_stand_ins,
    )


def platform_extensions_sql(plan: ExtensionPlan, texts: Iterable[str]) -> str:
    """``create extension`` for the pre-created Supabase extensions the sources use without
    creating them (``vault.create_secret(...)``), and those the shim's parts need, where the
    server has them or a stand-in."""
    names = [name for name in IMPLIED if name in plan.wanted and name not in plan.missing]
    names += [
        name for name in PART_EXTENSIONS.values()
        if name in plan.wanted and name not in plan.missing and name not in plan.requested
    ]
    if plan.binaries is None:  # a DSN server: only what it has
        return "".join(
            f"do $$ begin if exists (select from pg_catalog.pg_available_extensions where name = '{name}') then "
            f"create extension if not exists {name}; end if; end $$;\n"
            for name in names
        )
    return "".join(
        f"create extension if not exists {name}{' with schema extensions' if name not in IMPLIED else ''};\n"
        for name in names
    )
