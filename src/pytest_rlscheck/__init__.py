"""pytest-rlscheck: prove that a PostgreSQL schema keeps tenants apart.

The names below are imported when first used: a process that needs one module of the
package (the reaper, a watchdog started with every run) does not pay for all of them."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Rls
    from .errors import ConfigError, MigrationError, PrivilegeError, RlscheckError, ServerError, ServerNotFound
    from .impersonation import Identity

__all__ = [
    "ConfigError",
    "Identity",
    "MigrationError",
    "PrivilegeError",
    "Rls",
    "RlscheckError",
    "ServerError",
    "ServerNotFound",
]
__version__ = "0.1.0"

_WHERE = {
    "Rls": ".client",
    "Identity": ".impersonation",
    **{name: ".errors" for name in ("ConfigError", "MigrationError", "PrivilegeError", "RlscheckError",
                                    "ServerError", "ServerNotFound")},
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
