"""Where an object was last made what it is: the migration file and line, for reports (SARIF).

The migrations are read in order, statement by statement (top-level statements only: what a
``DO`` block or a function body runs does not count), and each object's site is the last
statement that (re)created or altered it:

* ``CREATE TABLE`` / ``VIEW`` / ``MATERIALIZED VIEW`` / ``FUNCTION`` / ``PROCEDURE`` (``OR
  REPLACE`` too); ``CREATE ... IF NOT EXISTS`` only when the object did not exist yet (after
  it exists the statement does nothing);
* ``ALTER TABLE`` / ``VIEW`` / ``MATERIALIZED VIEW`` / ``FOREIGN TABLE`` / ``FUNCTION`` /
  ``PROCEDURE`` on it (enabling, forcing or disabling RLS is an ``ALTER TABLE``); ``... RENAME
  TO`` and ``... SET SCHEMA`` move the site to the new name;
* ``DROP`` forgets it (and a table's policies), so a ``CREATE`` after it is the site.

Policies are keyed by their table and name: ``CREATE POLICY`` / ``ALTER POLICY`` (``RENAME
TO`` included); ``DROP POLICY`` forgets it. Functions are keyed by ``schema.name``: overloads
share one site (the last statement about any of them). Unquoted names fold to lower case,
quoted ones keep theirs; an unqualified name is in ``public`` (the search_path assumed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .migrations import SqlFile
from .sqlsplit import SplitError, split, tokens

__all__ = ["Sites", "creation_sites"]

Site = tuple[str, int]
_RELATIONS = ("table", "view", "function", "procedure")


@dataclass
class Sites:
    """``objects``: ``schema.name`` → (file, line); ``policies``: (``schema.table``, policy) →
    (file, line); ``order``: when each site was set (a later statement, a larger number)."""

    objects: dict[str, Site] = field(default_factory=dict)
    policies: dict[tuple[str, str], Site] = field(default_factory=dict)
    order: dict[Site, int] = field(default_factory=dict)

    @classmethod
    def read(cls, files: Iterable[SqlFile]) -> Sites:
        sites = cls()
        for file in files:
            try:
                statements = split(file.text)
            except SplitError:
                continue
            for statement in statements:
                site = (file.display, statement.line)
                sites.order[site] = len(sites.order)
                _Statement(_words(statement.text), site, sites).apply()
        return sites

    def of(self, qualified: str, policy: str | None = None) -> Site | None:
        """The site of the object ``qualified``, or of its policy ``policy`` when named (the
        table's own site when that policy is not known)."""
        if policy is not None and (qualified, policy) in self.policies:
            return self.policies[(qualified, policy)]
        return self.objects.get(qualified)

    def latest(self, qualified: str, policies: Sequence[str]) -> Site | None:
        """The most recent site of the policies named (one finding about several of them)."""
        known = [self.policies[(qualified, p)] for p in policies if (qualified, p) in self.policies]
        return max(known, key=self.order.__getitem__) if known else self.objects.get(qualified)

    def drop(self, qualified: str) -> None:
        self.objects.pop(qualified, None)
        for key in [k for k in self.policies if k[0] == qualified]:
            del self.policies[key]

    def move(self, old: str, new: str, site: Site) -> None:
        self.objects.pop(old, None)
        self.objects[new] = site
        for key in [k for k in self.policies if k[0] == old]:
            self.policies[(new, key[1])] = self.policies.pop(key)


def creation_sites(files: Iterable[SqlFile]) -> dict[str, Site]:
    """``schema.name`` → (file, line) of the last statement that (re)created or altered it."""
    return Sites.read(files).objects


def _words(text: str) -> list[tuple[str, str]]:
    """The statement's tokens as (kind, value): words lower-cased, quoted identifiers
    unquoted, comments and spaces left out."""
    out = []
    for kind, i, end in tokens(text):
        if kind in ("space", "comment", "block"):
            continue
        value = text[i:end]
        if kind == "word":
            value = value.lower()
        elif kind == "quoted":
            value = value[1:-1].replace('""', '"') if value.endswith('"') and len(value) > 1 else value[1:]
        elif kind == "other":
            for char in value:  # "." and "," of a name list arrive glued to other signs
                out.append(("other", char))
            continue
        out.append((kind, value))
    return out


class _Statement:
    def __init__(self, words: list[tuple[str, str]], site: Site, sites: Sites) -> None:
        self.words = words
        self.i = 0
        self.site = site
        self.sites = sites

    # -- reading --------------------------------------------------------------------

    def peek(self, *expected: str) -> bool:
        """The next words are ``expected`` (unquoted keywords)."""
        ahead = self.words[self.i : self.i + len(expected)]
        return len(ahead) == len(expected) and all(k == "word" and v == e for (k, v), e in zip(ahead, expected))

    def take(self, *expected: str) -> bool:
        if self.peek(*expected):
            self.i += len(expected)
            return True
        return False

    def ident(self) -> str | None:
        if self.i < len(self.words) and self.words[self.i][0] in ("word", "quoted"):
            self.i += 1
            return self.words[self.i - 1][1]
        return None

    def name(self) -> str | None:
        """A possibly qualified name, as ``schema.name`` (unqualified: in public)."""
        parts = [self.ident()]
        if parts[0] is None:
            return None
        while self.i + 1 < len(self.words) and self.words[self.i] == ("other", "."):
            self.i += 1
            parts.append(self.ident())
            if parts[-1] is None:
                return None
        return ".".join(parts[-2:]) if len(parts) > 1 else f"public.{parts[0]}"

    def skip_parens(self) -> None:
        if self.i < len(self.words) and self.words[self.i] == ("punct", "("):
            depth = 0
            while self.i < len(self.words):
                kind, value = self.words[self.i]
                self.i += 1
                if kind == "punct" and value in "()":
                    depth += 1 if value == "(" else -1
                    if depth == 0:
                        return

    def kind(self) -> str | None:
        """``table``, ``view``, ``function``, ``procedure`` or ``policy`` (materialized and
        foreign relations, temporary, unlogged and recursive ones count as their kind)."""
        while self.take("or", "replace") or any(
            self.take(w) for w in ("global", "local", "temp", "temporary", "unlogged", "recursive", "materialized", "foreign")
        ):
            pass
        for word in (*_RELATIONS, "policy"):
            if self.take(word):
                return word
        return None

    # -- applying ------------------------------------------------------------------

    def apply(self) -> None:
        if self.take("create"):
            self.create()
        elif self.take("alter"):
            self.alter()
        elif self.take("drop"):
            self.drop()

    def create(self) -> None:
        kind = self.kind()
        if kind == "policy":
            self.policy(set_site=True)
            return
        if kind is None:
            return
        if_not_exists = self.take("if", "not", "exists")
        name = self.name()
        if name is None or (if_not_exists and name in self.sites.objects):
            return
        self.sites.objects[name] = self.site

    def alter(self) -> None:
        kind = self.kind()
        if kind == "policy":
            self.policy(set_site=True)
            return
        if kind is None:
            return
        self.take("if", "exists")
        self.take("only")
        name = self.name()
        if name is None:
            return
        self.skip_parens()  # a function's arguments
        if self.i < len(self.words) and self.words[self.i] == ("other", "*"):
            self.i += 1
        schema, _, bare = name.partition(".")
        if self.take("rename", "to"):
            new = self.ident()
            if new is not None:
                self.sites.move(name, f"{schema}.{new}", self.site)
                return
        elif self.take("set", "schema"):
            new = self.ident()
            if new is not None:
                self.sites.move(name, f"{new}.{bare}", self.site)
                return
        self.sites.objects[name] = self.site

    def drop(self) -> None:
        kind = self.kind()
        if kind == "policy":
            self.take("if", "exists")
            policy = self.ident()
            if policy is not None and self.take("on"):
                table = self.name()
                if table is not None:
                    self.sites.policies.pop((table, policy), None)
            return
        if kind is None:
            if self.take("schema"):
                self.take("if", "exists")
                while (schema := self.ident()) is not None:
                    for name in [n for n in self.sites.objects if n.split(".")[0] == schema]:
                        self.sites.drop(name)
                    if not self.comma():
                        break
            return
        self.take("if", "exists")
        while (name := self.name()) is not None:
            self.skip_parens()
            self.sites.drop(name)
            if not self.comma():
                break

    def comma(self) -> bool:
        if self.i < len(self.words) and self.words[self.i] == ("other", ","):
            self.i += 1
            return True
        return False

    def policy(self, *, set_site: bool) -> None:
        """``[CREATE|ALTER] POLICY name ON table [RENAME TO new] ...``"""
        policy = self.ident()
        if policy is None or not self.take("on"):
            return
        table = self.name()
        if table is None:
            return
        if self.take("rename", "to"):
            new = self.ident()
            if new is not None:
                self.sites.policies.pop((table, policy), None)
                policy = new
        if set_site:
            self.sites.policies[(table, policy)] = self.site
