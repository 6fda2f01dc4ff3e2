"""A timing plugin for bench/speed_floor.py's breakdown of one cold run (``-p floor_timing``):
when pytest reached its phases, and how long the plugin's server start, plan, template
build and server stop took (their public methods wrapped). Written as JSON to
$RLSCHECK_FLOOR_MARKS when the process exits. Measurement only: it changes nothing the
plugin does."""

from __future__ import annotations

import atexit
import functools
import json
import os
import time

import pytest

MARKS: dict[str, float] = {"early": time.time()}
SPANS: dict[str, list[float]] = {}


def _wrap(owner: type, name: str, label: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args, **kwargs):
        started = time.time()
        try:
            return original(*args, **kwargs)
        finally:
            if label not in SPANS:  # the first call: the one that does the work
                SPANS[label] = [started, time.time()]

    setattr(owner, name, timed)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    from pytest_rlscheck.server import LocalServer
    from pytest_rlscheck.template import TemplateBuild

    _wrap(LocalServer, "__init__", "server")
    _wrap(LocalServer, "stop", "stop")
    _wrap(TemplateBuild, "plan", "plan")
    _wrap(TemplateBuild, "build", "build")
    MARKS["configured"] = time.time()


def pytest_collection_finish(session: pytest.Session) -> None:
    MARKS["collected"] = time.time()


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    MARKS.setdefault("first_item", time.time())


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    MARKS["last_item"] = time.time()


@atexit.register
def _write() -> None:
    path = os.environ.get("RLSCHECK_FLOOR_MARKS")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"marks": MARKS, "spans": SPANS}, f)
