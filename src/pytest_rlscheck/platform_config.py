"""What the platform around the database does, as a project's ``supabase/config.toml``
configures it: the Data API (PostgREST) and Auth (GoTrue) settings that decide what a
request sees — the exposed schemas and search_path, whether new tables get the API's
grants, the access token's lifetime and issuer, the custom access token hook.

Read once with the rest of the settings (:mod:`.config`); a missing file or key means the
CLI's default, each named here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["DEFAULT_API_SCHEMAS", "DEFAULT_EXTRA_SEARCH_PATH", "PlatformConfig", "read_platform"]

#: ``[api] schemas``: what PostgREST exposes when config.toml does not say.
DEFAULT_API_SCHEMAS = ("public", "graphql_public")
#: ``[api] extra_search_path``: appended to the exposed schema in every request's search_path.
DEFAULT_EXTRA_SEARCH_PATH = ("public", "extensions")
#: ``[auth] jwt_expiry``: seconds an access token lives.
DEFAULT_JWT_EXPIRY = 3600
#: ``[api] port``: the local API gateway, which names the issuer of local tokens.
DEFAULT_API_PORT = 54321
#: ``pg-functions://<database>/<schema>/<function>``: a hook that is a Postgres function.
_PG_FUNCTION_URI = re.compile(r"pg-functions://([^/]+)/([^/]+)/([^/]+)\Z")


@dataclass(frozen=True)
class PlatformConfig:
    """The Data API's and Auth's settings (the CLI's defaults unless config.toml says)."""

    #: ``[api] schemas``: the schemas PostgREST exposes; the first is the default one.
    api_schemas: tuple[str, ...] = DEFAULT_API_SCHEMAS
    #: ``[api] extra_search_path``.
    extra_search_path: tuple[str, ...] = DEFAULT_EXTRA_SEARCH_PATH
    #: ``[api] auto_expose_new_tables``: None when config.toml does not set it.
    auto_expose_new_tables: bool | None = None
    #: ``[auth] jwt_expiry`` in seconds.
    jwt_expiry: int = DEFAULT_JWT_EXPIRY
    #: The issuer of the access tokens: the local API's Auth URL (``[api] port``), or
    #: ``[auth] jwt_issuer`` when set.
    issuer: str = f"http://127.0.0.1:{DEFAULT_API_PORT}/auth/v1"
    #: ``project_id``: the ``ref`` claim of the anon and service_role keys.
    project_ref: str = "local"
    #: ``[auth.hook.custom_access_token]`` when enabled with a ``pg-functions://`` URI:
    #: (schema, function); None when there is no such hook.
    access_token_hook: tuple[str, str] | None = None
    #: Where these settings come from, for messages ("supabase/config.toml", or "defaults").
    source: str = "the Supabase CLI's defaults"

    @property
    def grants_new_tables(self) -> bool:
        """Whether tables that migrations create in ``public`` get the API roles' grants
        without a GRANT of their own. Unset: yes, as the CLI's ``db reset`` still does when
        the flag is absent (``ApplyApiPrivileges`` revokes them only for ``false``)."""
        return self.auto_expose_new_tables is not False


def read_platform(data: Mapping[str, Any], where: str) -> PlatformConfig:
    """The platform settings of a parsed config.toml (``where`` names it in errors)."""
    api = _table(data, "api", where)
    auth = _table(data, "auth", where)
    schemas = _names(api, "schemas", f"{where}: [api] schemas", DEFAULT_API_SCHEMAS)
    extra = _names(api, "extra_search_path", f"{where}: [api] extra_search_path", DEFAULT_EXTRA_SEARCH_PATH)
    expose = api.get("auto_expose_new_tables")
    if expose is not None and not isinstance(expose, bool):
        raise ConfigError(f"{where}: [api] auto_expose_new_tables must be true or false, got {expose!r}")
    expiry = auth.get("jwt_expiry", DEFAULT_JWT_EXPIRY)
    if isinstance(expiry, bool) or not isinstance(expiry, int) or expiry <= 0:
        raise ConfigError(f"{where}: [auth] jwt_expiry must be a number of seconds, got {expiry!r}")
    port = api.get("port", DEFAULT_API_PORT)
    if isinstance(port, bool) or not isinstance(port, int):
        raise ConfigError(f"{where}: [api] port must be a number, got {port!r}")
    issuer = auth.get("jwt_issuer") or f"http://127.0.0.1:{port}/auth/v1"
    if not isinstance(issuer, str):
        raise ConfigError(f"{where}: [auth] jwt_issuer must be a string, got {issuer!r}")
    ref = data.get("project_id", "local")
    if not isinstance(ref, str):
        raise ConfigError(f"{where}: project_id must be a string, got {ref!r}")
    return PlatformConfig(
        api_schemas=schemas,
        extra_search_path=extra,
        auto_expose_new_tables=expose,
        jwt_expiry=expiry,
        issuer=issuer,
        project_ref=ref,
        access_token_hook=_access_token_hook(auth, where),
        source=where,
    )


def _access_token_hook(auth: Mapping[str, Any], where: str) -> tuple[str, str] | None:
    hooks = auth.get("hook") or {}
    hook = hooks.get("custom_access_token") if isinstance(hooks, dict) else None
    if hook is None:
        return None
    name = f"{where}: [auth.hook.custom_access_token]"
    if not isinstance(hook, dict):
        raise ConfigError(f"{name} must be a table")
    enabled = hook.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{name} enabled must be true or false, got {enabled!r}")
    if not enabled:
        return None
    uri = hook.get("uri")
    if not isinstance(uri, str):
        raise ConfigError(f'{name} uri must be a string such as "pg-functions://postgres/public/custom_access_token_hook"')
    found = _PG_FUNCTION_URI.match(uri)
    if not found:
        if uri.startswith(("http://", "https://")):
            return None  # an HTTP hook runs outside the database: nothing of it to run here
        raise ConfigError(f"{name} uri {uri!r} is neither pg-functions://<database>/<schema>/<function> nor http(s)")
    return found.group(2), found.group(3)


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


def _names(table: Mapping[str, Any], key: str, where: str, default: tuple[str, ...]) -> tuple[str, ...]:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, str) or not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
        raise ConfigError(f'{where} must be a list of schema names, e.g. ["public"], got {value!r}')
    return tuple(value)
