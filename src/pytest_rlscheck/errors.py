"""Errors the plugin reports to people, each with a message that says what to do."""

from __future__ import annotations

import pytest


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

    def __init__(self, report: str, *, location: str | None = None) -> None:
        super().__init__(report)
        self.location = location


class PrivilegeError(RlscheckError):
    """The role behind ``--rlscheck-dsn`` lacks a right the plugin needs."""


class MigrationError(RlscheckError):
    """A migration or seed file failed; ``render()`` is the ``file:line:col`` report."""

    def __init__(self, report: str, *, location: str, sqlstate: str | None) -> None:
        super().__init__(report)
        self.location = location
        self.sqlstate = sqlstate


class RlscheckUsageError(RlscheckError, RuntimeError):
    """A test used the plugin in a way that would undermine the isolation it provides."""


class RlsAssertionError(AssertionError):
    """An rlscheck assertion failed: the message says what was expected, what was found,
    on which object, and how to fix it."""


class RlscheckWarning(pytest.PytestWarning):
    """Something undermined what the plugin provides, or was applied differently than it reads."""
