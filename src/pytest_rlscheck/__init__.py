"""pytest-rlscheck: prove that a PostgreSQL schema keeps tenants apart."""

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
