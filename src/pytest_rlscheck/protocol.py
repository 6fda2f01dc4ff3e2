"""What the checks may ask of the ``rls`` object: a small public protocol, in a leaf module
(as psycopg's ``abc.py`` is), so that the rules, the isolation probes, the assertions and
the fuzzing depend on this and not on :class:`pytest_rlscheck.client.Rls` and its insides.

:class:`~pytest_rlscheck.client.Rls` implements it; a test asserts that it does.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import psycopg

    from .catalog import Relation
    from .impersonation import Identity, Principal
    from .plans import FunctionPattern, Plan

__all__ = ["RlsProtocol"]

@runtime_checkable
class RlsProtocol(Protocol):
    """The test's connection to the migrated database, as the checks use it."""

    connection: psycopg.Connection[Any]
    transactional: bool

    # -- queries, as the current identity or as the owner --------------------------------
    def execute(self, query: Any, params: Any = None) -> psycopg.Cursor[Any]: ...
    def fetchall(self, query: Any, params: Any = None) -> list[tuple[Any, ...]]: ...
    def fetchone(self, query: Any, params: Any = None) -> tuple[Any, ...] | None: ...
    def scalar(self, query: Any, params: Any = None) -> Any: ...
    def owner_fetchall(self, query: Any, params: Any = None) -> list[tuple[Any, ...]]: ...
    def as_owner(self) -> AbstractContextManager[None]: ...
    def safely(self) -> AbstractContextManager[None]: ...

    # -- who acts -------------------------------------------------------------------------
    @property
    def identity(self) -> Identity | None: ...
    def identity_for(self, who: Any) -> Identity | None: ...
    def settings_in_effect(self) -> set[str]: ...
    def principal(self, value: Any) -> Principal: ...
    def user(self, sub: Any, *, tenant: Any = None, role: str = "authenticated",
             claims: Mapping[str, Any] | None = None, email: str | None = None) -> Principal: ...

    # -- the catalog and plans ------------------------------------------------------------
    def relation(self, name: str) -> Relation: ...
    def explain(self, query: Any, params: Any = None, *, as_user: Any = None,
                settings: Mapping[str, str] | None = None, count_calls: bool = True) -> Plan: ...
    def function_pattern(self, name: str) -> FunctionPattern: ...
    def register_function_pattern(self, pattern: FunctionPattern) -> None: ...

    # -- configuration ----------------------------------------------------------------------
    config: Any  # the project's [tool.rlscheck] settings
