"""Findings of the schema sweep: a stable rule id, a severity, the object, what is wrong
and how to fix it."""

from __future__ import annotations

import enum
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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = str(self.severity)
        return data
