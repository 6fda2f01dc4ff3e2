"""A watchdog process that cleans up after a test process that died without doing it.

The test process starts one reaper and keeps a pipe to it open. It tells the reaper, one
JSON line at a time, what it creates: temp directories, a local server, databases on an
existing server. When it closes normally it says ``done`` first. If the pipe reaches EOF
without ``done`` (SIGKILL, a crash, an interpreter that never ran its cleanup), the
reaper stops the server, drops the databases and deletes the directories. Ctrl-C and
SIGTERM are handled in the test process itself; this covers what they cannot.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from typing import IO, Any

__all__ = ["Reaper"]


class Reaper:
    """The test-process side: spawns the watchdog and reports resources to it."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def _send(self, message: dict[str, Any]) -> None:
        if self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "pytest_rlscheck.reaper"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal must not reach it
                close_fds=True,
            )
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(message).encode() + b"\n")
        self._proc.stdin.flush()

    def track_dir(self, path: str) -> None:
        self._send({"dir": path})

    def track_server(self, pg_ctl: str, datadir: str, run_as: tuple[int, int] | None) -> None:
        self._send({"server": {"pg_ctl": pg_ctl, "datadir": datadir, "run_as": run_as}})

    def track_database(self, conninfo: str, name: str) -> None:
        self._send({"db": {"conninfo": conninfo, "name": name}})

    def forget_database(self, name: str) -> None:
        self._send({"forget_db": name})

    def close(self) -> None:
        """Everything was cleaned up: let the watchdog exit without acting."""
        if self._proc is None:
            return
        try:
            self._send({"done": True})
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
        self._proc = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None


def _cleanup(dirs: list[str], servers: list[dict[str, Any]], dbs: dict[str, str]) -> None:
    for server in servers:
        kwargs: dict[str, Any] = {}
        if server.get("run_as"):
            uid, gid = server["run_as"]
            kwargs = {"user": uid, "group": gid, "extra_groups": []}
        try:
            subprocess.run(
                [server["pg_ctl"], "stop", "-D", server["datadir"], "-m", "immediate", "-w", "-t", "30"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
                **kwargs,
            )
        except (OSError, subprocess.SubprocessError):
            pass
    if dbs:
        _drop_databases(dbs)
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


def _drop_databases(dbs: dict[str, str]) -> None:
    try:
        import psycopg
        from psycopg import sql
    except ImportError:  # pragma: no cover
        return
    for name, conninfo in dbs.items():
        if not name.startswith("rlscheck_"):
            continue  # never touch a database we did not name
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        except Exception:  # noqa: BLE001 - best effort, the server may be gone
            pass


def _watch(stream: IO[bytes]) -> int:
    dirs: list[str] = []
    servers: list[dict[str, Any]] = []
    dbs: dict[str, str] = {}
    for raw in stream:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if message.get("done"):
            return 0
        if "dir" in message:
            dirs.append(message["dir"])
        elif "server" in message:
            servers.append(message["server"])
        elif "db" in message:
            dbs[message["db"]["name"]] = message["db"]["conninfo"]
        elif "forget_db" in message:
            dbs.pop(message["forget_db"], None)
    # EOF without "done": the test process is gone.
    _cleanup(dirs, servers, dbs)
    return 1


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    os.chdir("/")
    return _watch(sys.stdin.buffer)


if __name__ == "__main__":
    sys.exit(main())
