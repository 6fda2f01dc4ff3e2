"""The xdist hand-over: the controller builds the server and the template once
(:func:`shared_info`), each worker connects to that server and clones that template
(:class:`HandedOver`), as an existing server.

What is handed over is plain data (it travels in ``workerinput``): the run's id, the
template's name and parts, how to connect, the stand-in lines for the report, the server's
files (so that a worker can tell what became of a server that went away), or the error
the build failed with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import RlscheckError, error_from_shared, error_to_shared
from .extensions import ExtensionPlan
from .server import ExternalServer, LocalServer, Server, ServerFiles
from .template import CacheStatus

if TYPE_CHECKING:
    from .session import RlsSession

__all__ = ["HandedOver", "shared_info"]


def shared_info(session: RlsSession) -> dict[str, Any]:
    """What an xdist worker needs to use this session's server and template."""
    info: dict[str, Any] = {"run_id": session.run_id, "parts": list(session.parts), "error": None, "stand_ins": []}
    try:
        info["template"] = session.template()
        info["parts"] = list(session.parts)
        info["owner"] = session.owner
        server = session.server
        info["conninfo"] = server.conninfo(server.maintenance_db)
        info["description"] = server.description
        info["stand_ins"] = session.stand_in_lines()
        status = session.template_source
        info["template_source"] = [status.state, status.key, status.reason] if status is not None else None
        if isinstance(server, LocalServer):
            info["files"] = dataclasses.asdict(server.files)
    except RlscheckError as exc:
        info["error"] = error_to_shared(exc)
    return info


class HandedOver:
    """A worker's server and template, as the controller built them (a
    :class:`.template.TemplateSource`)."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        self._info = dict(info)
        self.run_id: str = self._info["run_id"]
        self.parts: tuple[str, ...] = tuple(self._info["parts"])
        self.owner: str | None = self._info.get("owner")
        source = self._info.get("template_source")
        #: Where the controller's template came from (for a worker's environment()).
        self.cache_status = CacheStatus(source[0], source[1], None, source[2]) if source else None

    @property
    def planned(self) -> ExtensionPlan | None:
        return None  # the controller chose the server, and reports it

    def start_server(self) -> Server:
        files = self._info.get("files")
        return ExternalServer(
            self._info["conninfo"],
            description=self._info["description"],
            files=ServerFiles(**{**files, "run_as": tuple(files["run_as"]) if files["run_as"] else None})
            if files
            else None,
        )

    def build(self, server: Callable[[], Server], create: Callable[[], str]) -> str:
        """The controller's template (built already); its error, if the build failed."""
        if self._info.get("error"):
            raise error_from_shared(self._info["error"])
        return str(self._info["template"])

    def header_lines(self) -> list[str]:
        return []

    def stand_in_lines(self) -> list[str]:
        return list(self._info.get("stand_ins", ()))

    def clear_cache(self) -> int:
        return 0  # the controller's to do

    def clean_up(self, server: ExternalServer) -> None:
        """Nothing: the controller cleans up what its build added."""
