"""Findings of the schema sweep: a stable rule id, a severity, the object, what is wrong
and how to fix it."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Finding", "ObjectRef", "Severity"]


class Severity(enum.IntEnum):
    INFO = 1
    WARN = 2
    ERROR = 3

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"severity must be error, warn or info, got {text!r}") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class ObjectRef:
    """What a check or a finding is about: a table, view or function of a schema, a column of
    a table, or (``schema`` empty) something outside the schema, such as a migration file.

    Two references are the same object when their names are: ``kind`` describes it and takes
    no part in comparisons (a rule's finding belongs to the check of the same name)."""

    kind: str = field(compare=False)  # "table", "view", "function", "column", "migration", "setup"
    schema: str
    name: str
    #: A function's arguments as PostgreSQL prints them ("" for none); None for anything else.
    arguments: str | None = None
    column: str | None = None  # a column of the table ``schema.name``

    @classmethod
    def outside(cls, kind: str, name: str) -> ObjectRef:
        """Something outside the schema: a migration file, the schema as a whole."""
        return cls(kind, "", name)

    @property
    def qualified(self) -> str:
        """``schema.name``: a function without its arguments, a column's table."""
        return f"{self.schema}.{self.name}" if self.schema else self.name

    @property
    def display(self) -> str:
        """``schema.name``, ``schema.name(arguments)`` or ``schema.table.column``: how the
        reports, the item ids and ``[tool.rlscheck.ignore]`` keys name it."""
        if self.arguments is not None:
            return f"{self.qualified}({self.arguments})"
        if self.column is not None:
            return f"{self.qualified}.{self.column}"
        return self.qualified

    def ignore_names(self) -> tuple[str, ...]:
        """The names an ``[tool.rlscheck.ignore]`` key may give it: its own, and for a function
        also its name alone (every overload)."""
        return (self.display, self.qualified) if self.arguments is not None else (self.display,)

    def __str__(self) -> str:
        return self.display

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "schema": self.schema, "name": self.name, "arguments": self.arguments,
                "column": self.column}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectRef:
        return cls(data["kind"], data["schema"], data["name"], data.get("arguments"), data.get("column"))


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    object: ObjectRef
    message: str
    fix: str = ""
    file: str | None = None  # where the object was created (or the file that failed), when known
    line: int | None = None
    column: int | None = None  # known for a failed migration only
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def fingerprint(self) -> str:
        """Stable across runs and machines: the rule, the object and what in the details
        tells two findings on one object apart (a policy, a column, a command...), not the
        message's wording or any measured number. ``"<rule>:#<fingerprint>"`` ignores it."""
        which = {k: v for k, v in sorted(self.details.items()) if k in DISCRIMINATING}
        key = json.dumps([self.rule, self.object, which], sort_keys=True, default=str)
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the reports: ``object`` as the reports print it, ``ref`` its parts."""
        data = asdict(self)
        data["severity"] = str(self.severity)
        data["object"] = self.object.display
        data["ref"] = self.object.to_dict()
        data["fingerprint"] = self.fingerprint
        return data


#: The details that say which part of an object a finding is about.
DISCRIMINATING = frozenset({"policy", "column", "command", "constraint", "role", "statement", "function", "roles", "policies"})
