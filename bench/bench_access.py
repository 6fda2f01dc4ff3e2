"""Issue 15: what the access matrix costs the sweep, side by side in one run:

    python bench/bench_access.py [--runs 5] [--before REV] [--only example|generated]

Four variants of ``pytest --rlscheck -m rlscheck`` on the same project, alternating, medians
of ``--runs``, each a whole process on the cached template (the build is not what is
compared):

- ``before``: the plugin at ``--before`` (default: the commit before the matrix, read with
  ``git archive`` into a temporary directory): the sweep without the matrix;
- ``matrix``: this tree, no snapshot: the same sweep, the matrix read off its outcomes;
- ``snapshot``: this tree comparing with a snapshot (one access-changed item per relation);
- ``update``: this tree writing the snapshot (``--rlscheck-snapshot-update``).

Besides the seconds, each variant's statements: every ``execute`` psycopg's cursors ran in
the pytest process (the probes among them), counted by a wrapper around pytest. The matrix
adds no probe: its statements are the sweep's, plus a transaction per access-changed item
and one read of ``pg_roles``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from speed_floor import generate_project, worked_example  # noqa: E402

DEFAULT_BEFORE = "0fb3d1e"  # the last commit without the matrix
#: Run pytest in-process with every cursor execute counted; prints ``STATEMENTS <n>``.
COUNTING = """
import sys, psycopg, pytest
count = [0]
original = psycopg.Cursor.execute
def execute(self, *args, **kwargs):
    count[0] += 1
    return original(self, *args, **kwargs)
psycopg.Cursor.execute = execute
code = pytest.main(sys.argv[1:])
print("STATEMENTS", count[0])
sys.exit(int(code))
"""
ARGS = ("-p", "no:cacheprovider", "-p", "no:xdist", "-q", "--rlscheck", "-m", "rlscheck")


def run(project: Path, src: Path, cache: Path, *args: str) -> tuple[float, int, str]:
    env = {**os.environ, "PYTHONPATH": str(src), "RLSCHECK_CACHE_DIR": str(cache)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", COUNTING, *ARGS, *args], cwd=project, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    out = done.stdout + done.stderr
    found = re.search(r"^STATEMENTS (\d+)$", out, re.M)
    if done.returncode not in (0, 1) or found is None or "checks of the schema sweep will run" not in out:
        raise SystemExit(f"pytest failed in {project} (exit {done.returncode}):\n{out[-3000:]}")
    return elapsed, int(found.group(1)), out


def export(rev: str, into: Path) -> Path:
    """The plugin's source at ``rev`` (git archive of src/), for the ``before`` variant."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def measure(project: Path, before_src: Path, runs: int) -> None:
    cache = Path(tempfile.mkdtemp(prefix="rlscheck-bench-access-cache-"))
    os.chmod(cache, 0o755)  # the server's account copies the template from it
    try:
        _measure(project, before_src, runs, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _measure(project: Path, before_src: Path, runs: int, cache: Path) -> None:
    src = ROOT / "src"
    snapshot = project / "bench-access.json"
    variants = {
        "before": (before_src, ()),
        "matrix": (src, ()),
        "snapshot": (src, (f"--rlscheck-snapshot={snapshot}",)),
        "update": (src, (f"--rlscheck-snapshot={snapshot}", "--rlscheck-snapshot-update")),
    }
    # warm: the template in the cache for both trees, the snapshot written
    for name, (tree, args) in (("before", variants["before"]), ("update", variants["update"])):
        run(project, tree, cache, *args)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    statements: dict[str, set[int]] = {name: set() for name in variants}
    items: dict[str, str] = {}
    for _ in range(runs):
        for name, (tree, args) in variants.items():
            elapsed, count, out = run(project, tree, cache, *args)
            seconds[name].append(elapsed)
            statements[name].add(count)
            summary = [line for line in out.splitlines() if " passed" in line or " failed" in line]
            items[name] = summary[-1].strip("= ") if summary else "?"
    base = statistics.median(seconds["before"])
    base_statements = min(statements["before"])
    print(f"\n{project.name}: medians of {runs}, whole processes on the cached template")
    print("| variant | seconds | × before | statements | + before | items |")
    print("|---|---|---|---|---|---|")
    for name in variants:
        median = statistics.median(seconds[name])
        count = min(statements[name])
        spread = "" if len(statements[name]) == 1 else f" (to {max(statements[name])})"
        print(f"| {name} | {median:.2f} | {median / base:.2f}× | {count}{spread} | {count - base_statements:+d} | {items[name]} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", default=DEFAULT_BEFORE)
    parser.add_argument("--only", choices=("example", "generated"))
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rlscheck-bench-access-") as tmp:
        before = export(options.before, Path(tmp))
        if options.only in (None, "example"):
            measure(worked_example(Path(tmp) / "example"), before, options.runs)
        if options.only in (None, "generated"):
            measure(generate_project(Path(tmp) / "generated"), before, options.runs)


if __name__ == "__main__":
    main()
