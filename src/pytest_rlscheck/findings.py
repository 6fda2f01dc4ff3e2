"""Findings of the schema sweep: a stable rule id, a severity, the object, what is wrong
and how to fix it."""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Finding", "Severity"]


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
class Finding:
    rule: str
    severity: Severity
    object: str  # schema.name, or schema.name(args) for a function
    message: str
    fix: str = ""
    file: str | None = None  # where the object was created, when it can be found
    line: int | None = None
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
        data = asdict(self)
        data["severity"] = str(self.severity)
        data["fingerprint"] = self.fingerprint
        return data


#: The details that say which part of an object a finding is about.
DISCRIMINATING = frozenset({"policy", "column", "command", "constraint", "role", "statement", "function", "roles", "policies"})
