"""Errors the plugin reports to people, each with a message that says what to do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Location:
    """A place in a file: 1-based line and column; ``str()`` is ``file:line:column``, the
    form terminals and editors open."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Location:
        return cls(str(data["file"]), int(data["line"]), int(data["column"]))


class RlscheckError(Exception):
    """Base class: an error whose message is the whole report (pytest shows no traceback)."""

    def render(self) -> str:
        return str(self)


class ConfigError(RlscheckError):
    """``[tool.rlscheck]`` or a command-line option is malformed."""


class ServerNotFound(RlscheckError):
    """No PostgreSQL server binaries could be found."""


class ServerError(RlscheckError):
    """The throw-away server could not be started or reached."""


class ServerLost(ServerError):
    """The connection to the server broke mid-run: the server died or closed it."""

    def __init__(self, report: str, *, location: Location | None = None) -> None:
        super().__init__(report)
        self.location = location


class PrivilegeError(RlscheckError):
    """The role behind ``--rlscheck-dsn`` lacks a right the plugin needs."""


class MigrationError(RlscheckError):
    """A migration or seed file failed; ``render()`` is the ``file:line:col`` report."""

    def __init__(self, report: str, *, location: Location, sqlstate: str | None) -> None:
        super().__init__(report)
        self.location = location
        self.sqlstate = sqlstate


def error_to_shared(exc: RlscheckError) -> dict[str, Any]:
    """``exc`` as plain data (for an xdist worker: execnet carries no exception objects), its
    location as fields, not text."""
    location = getattr(exc, "location", None)
    return {
        "type": type(exc).__name__,
        "report": exc.render(),
        "location": location.to_dict() if isinstance(location, Location) else None,
        "sqlstate": getattr(exc, "sqlstate", None),
    }


def error_from_shared(data: Mapping[str, Any]) -> RlscheckError:
    """The error :func:`error_to_shared` described: a MigrationError or a ServerLost with its
    location, any other as an RlscheckError with the same report."""
    location = Location.from_dict(data["location"]) if data.get("location") else None
    if data.get("type") == "MigrationError" and location is not None:
        return MigrationError(data["report"], location=location, sqlstate=data.get("sqlstate"))
    if data.get("type") == "ServerLost":
        return ServerLost(data["report"], location=location)
    return RlscheckError(data["report"])


class SignUpFailed(RlscheckError):
    """Inserting a user as Supabase Auth does (role supabase_auth_admin, search_path auth)
    failed: on Supabase the sign-up fails the same way. ``sqlstate`` is Postgres' own."""

    def __init__(self, report: str, *, sqlstate: str | None, context: str = "") -> None:
        super().__init__(report)
        self.sqlstate = sqlstate
        #: Postgres' CONTEXT: the trigger function (and what it called) the error came from.
        self.context = context

    @property
    def origin(self) -> str:
        """The outermost function of the CONTEXT (the trigger's own), or ""."""
        lines = [line.strip() for line in self.context.splitlines() if line.strip()]
        return lines[-1] if lines else ""


class AccessTokenHookError(RlscheckError):
    """The custom access token hook made the sign-in fail, as Supabase Auth would refuse it:
    ``status`` is the HTTP status Auth answers with, ``problem`` what went wrong, ``details``
    PostgreSQL's own message or the claims at fault."""

    def __init__(self, hook: str, problem: str, status: int = 500, fix: str = "",
                 details: tuple[str, ...] = ()) -> None:
        super().__init__(hook, problem, status, fix, details)
        self.hook = hook
        self.problem = problem
        self.status = status
        self.fix = fix
        self.details = details

    def __str__(self) -> str:
        lines = [
            f"the custom access token hook {self.hook} ([auth.hook.custom_access_token]) {self.problem}",
            *self.details,
            f"In production the sign-in fails: Supabase Auth answers HTTP {self.status} and issues no token.",
        ]
        if self.fix:
            lines.append(f"Fix: {self.fix}")
        return "\n".join(lines)


class RlscheckUsageError(RlscheckError, RuntimeError):
    """A test used the plugin in a way that would undermine the isolation it provides."""


class RlsAssertionError(AssertionError):
    """An rlscheck assertion failed: the message says what was expected, what was found,
    on which object, and how to fix it.

    ``headline`` (what failed) and ``fix`` (the cause and the remedy) are the parts of the
    message, for reports that show them apart; without them the message is the headline."""

    def __init__(self, message: str = "", *, headline: str | None = None, fix: str = "") -> None:
        super().__init__(message)
        self._headline = headline
        self.fix = fix

    @property
    def headline(self) -> str:
        return str(self) if self._headline is None else self._headline


class RlscheckWarning(pytest.PytestWarning):
    """Something undermined what the plugin provides, or was applied differently than it reads."""
