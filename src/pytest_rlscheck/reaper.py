"""A watchdog process that cleans up after a test process that died without doing it.

The test process starts one reaper and keeps a pipe to it open. It tells the reaper, one
JSON line at a time, what it is about to create (temp directories — before they exist —,
a local server, databases on an existing server) and what it has removed again. When it
closes with nothing left it says ``done``; with something left (a clean-up that was itself
interrupted) it says ``cleanup`` and waits for the reaper to do it. If the pipe reaches EOF
without ``done`` (SIGKILL, a crash, an interpreter that never ran its cleanup), the reaper
stops the server, drops the databases and deletes the directories. Ctrl-C and SIGTERM are
handled in the test process itself; this covers what they cannot.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["Reaper", "kill_server_processes"]

#: How long the test process waits for the reaper to finish a clean-up it was handed.
CLEANUP_WAIT = 120


class Reaper:
    """The test-process side: spawns the watchdog and reports resources to it."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._tracked: set[tuple[str, str]] = set()  # (kind, key) not yet removed again

    def start(self) -> None:
        """Spawn the watchdog now (before anything is created that it must clean up)."""
        if self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "pytest_rlscheck.reaper"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal must not reach it
                close_fds=True,
            )

    def _send(self, message: dict[str, Any]) -> None:
        self.start()
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(message).encode() + b"\n")
        self._proc.stdin.flush()

    def track_dir(self, path: str) -> None:
        """Call before creating ``path``: a kill right after the mkdir must not leave it."""
        self._tracked.add(("dir", path))
        self._send({"dir": path})

    def forget_dir(self, path: str) -> None:
        self._tracked.discard(("dir", path))
        self._send({"forget_dir": path})

    def track_server(self, pg_ctl: str, datadir: str, run_as: tuple[int, int] | None) -> None:
        self._tracked.add(("server", datadir))
        self._send({"server": {"pg_ctl": pg_ctl, "datadir": datadir, "run_as": run_as}})

    def forget_server(self, datadir: str) -> None:
        self._tracked.discard(("server", datadir))
        self._send({"forget_server": datadir})

    def track_database(self, conninfo: str, name: str) -> None:
        self._tracked.add(("db", name))
        self._send({"db": {"conninfo": conninfo, "name": name}})

    def forget_database(self, name: str) -> None:
        self._tracked.discard(("db", name))
        self._send({"forget_db": name})

    def track_cluster(
        self, conninfo: str, *, before: Any = None, created: Any = None, unmarked: list[str] | None = None
    ) -> None:
        """The roles and memberships of an existing server before a build (ClusterState), or
        what the build added there (after it)."""
        self._tracked.add(("cluster", conninfo))
        message: dict[str, Any] = {"conninfo": conninfo, "own": unmarked or []}
        for key, state in (("before", before), ("created", created)):
            if state is not None:
                message[key] = {"roles": sorted(state.roles), "memberships": sorted(state.memberships)}
        self._send({"cluster": message})

    def forget_cluster(self) -> None:
        self._tracked = {t for t in self._tracked if t[0] != "cluster"}
        self._send({"forget_cluster": True})

    def close(self) -> None:
        """End the watchdog: at once when everything was removed, else after it has removed
        what is left (a clean-up of ours that failed or was interrupted)."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        leftover = bool(self._tracked)
        if leftover:
            kinds = ", ".join(sorted({kind for kind, _ in self._tracked}))
            sys.stderr.write(f"rlscheck: cleaning up what the run could not remove itself ({kinds})...\n")
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"cleanup" if leftover else "done": True}).encode() + b"\n")
            proc.stdin.close()
            proc.wait(timeout=CLEANUP_WAIT if leftover else 10)
        except (OSError, subprocess.TimeoutExpired):
            if not leftover:
                proc.kill()
        self._tracked.clear()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None


def _cleanup(
    dirs: list[str], servers: dict[str, dict[str, Any]], dbs: dict[str, str], cluster: dict[str, Any] | None = None
) -> None:
    for server in servers.values():
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
    if cluster:
        _clean_cluster(cluster)
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)
    # A server that was still starting (pg_ctl had not written postmaster.pid yet) is not
    # stopped by pg_ctl: with its directory gone it cannot start, and what did start goes.
    for datadir in servers:
        kill_server_processes(datadir)
    # and whatever else runs in the run's directories: an initdb making the cached cluster
    # in its staging directory when the run was killed
    for path in dirs:
        kill_server_processes(path)
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


def kill_server_processes(datadir: str, *, wait: float = 10.0) -> None:
    """End every process started for ``datadir`` (its argv names it): a postmaster pg_ctl
    could not stop, or the shell that was about to exec one. SIGQUIT first (an immediate
    shutdown that frees shared memory), SIGKILL for what is still there after ``wait``.
    Each process is known by its pid and its start time, so that a pid the system has
    given to another process meanwhile is never signalled."""
    found = _processes_naming(datadir)
    for pid, started in found:
        _signal(pid, signal.SIGQUIT, started)
    deadline = time.monotonic() + wait
    while found and time.monotonic() < deadline:
        time.sleep(0.05)
        found = [(pid, started) for pid, started in found if _start_time(pid) == started]
    for pid, started in found:
        _signal(pid, signal.SIGKILL, started)


def _processes_naming(datadir: str) -> list[tuple[int, str]]:
    proc = Path("/proc")
    if not proc.is_dir():  # pragma: no cover - not Linux: pg_ctl stop is all there is
        return []
    needle = datadir.encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        started = _start_time(pid)
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if started and any(needle in arg for arg in argv[1:]) and _start_time(pid) == started:
            found.append((pid, started))
    return found


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat); None once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def _signal(pid: int, sig: int, started: str) -> None:
    if _start_time(pid) != started:
        return  # gone, or the pid now belongs to another process
    try:
        os.kill(pid, sig)
    except OSError:
        pass


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


def _clean_cluster(cluster: dict[str, Any]) -> None:
    try:
        from .cluster import ClusterState, clean_up

        def state(key: str) -> ClusterState | None:
            raw = cluster.get(key)
            if raw is None:
                return None
            return ClusterState(frozenset(raw["roles"]), frozenset(tuple(m) for m in raw["memberships"]))

        clean_up(cluster["conninfo"], state("created"), own_roles=cluster.get("own") or [], before=state("before"))
    except Exception:  # noqa: BLE001 - best effort, the server may be gone
        pass


def _watch(stream: IO[bytes]) -> int:
    dirs: list[str] = []
    servers: dict[str, dict[str, Any]] = {}
    dbs: dict[str, str] = {}
    cluster: dict[str, Any] | None = None
    for raw in stream:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if message.get("done"):
            return 0
        if message.get("cleanup"):
            break
        if "dir" in message:
            dirs.append(message["dir"])
        elif "forget_dir" in message:
            dirs = [d for d in dirs if d != message["forget_dir"]]
        elif "server" in message:
            servers[message["server"]["datadir"]] = message["server"]
        elif "forget_server" in message:
            servers.pop(message["forget_server"], None)
        elif "db" in message:
            dbs[message["db"]["name"]] = message["db"]["conninfo"]
        elif "forget_db" in message:
            dbs.pop(message["forget_db"], None)
        elif "cluster" in message:
            cluster = message["cluster"]
        elif "forget_cluster" in message:
            cluster = None
    # EOF without "done" (the test process is gone), or asked to: clean up what is left.
    _cleanup(dirs, servers, dbs, cluster)
    return 1


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    os.chdir("/")
    return _watch(sys.stdin.buffer)


if __name__ == "__main__":
    sys.exit(main())
