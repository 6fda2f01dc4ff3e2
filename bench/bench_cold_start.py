"""Cold start: ``pytest --rlscheck`` on the worked example, this tree against another one
(default: the commit before the extension work), alternating, in one run.

    git worktree add /tmp/rlscheck-base 376bab3   # the tree to compare with, once
    python bench/bench_cold_start.py [--base /tmp/rlscheck-base] [--runs 7]

Each run is a fresh pytest process: plugin import, server choice, server start (this tree:
a copy of the initdb'd cluster cached per installation; the base: initdb), template build
(shim and migrations), the sweep, teardown. Also the cold start of a project that
needs a stand-in, with its private installation copy built afresh and reused.
Medians; read the ratios (the machine is noisy).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-m", "pytest", "--rlscheck", "-m", "rlscheck", "-q", "-p", "no:cacheprovider"]


def _run(tree: Path, cwd: Path, env: dict[str, str] | None = None) -> float:
    environment = {**os.environ, "PYTHONPATH": str(tree / "src"), **(env or {})}
    started = time.perf_counter()
    done = subprocess.run(COMMAND, cwd=cwd, env=environment, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: findings (the example has some by design)
        raise SystemExit(f"{tree}: pytest exited {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def _which(tree: Path) -> str:
    code = "import pytest_rlscheck, sys; sys.stdout.write(pytest_rlscheck.__file__)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(tree / "src")},
                         capture_output=True, text=True).stdout
    if not out.startswith(str(tree)):
        raise SystemExit(f"PYTHONPATH={tree}/src does not import that tree's plugin ({out})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, default=Path("/tmp/rlscheck-base"))
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    _which(ROOT)
    _which(args.base)
    samples: dict[str, list[float]] = {"base": [], "this": []}
    for _ in range(args.runs):  # alternating, so that drift hits both alike
        samples["base"].append(_run(args.base, args.base))
        samples["this"].append(_run(ROOT, ROOT))
    base, this = (statistics.median(samples[k]) for k in ("base", "this"))
    print(f"\ncold start of `pytest --rlscheck -m rlscheck` on the worked example ({args.runs} runs each, median)")
    print(f"{'tree':<10} {'seconds':>8} {'ratio':>6}")
    print(f"{'base':<10} {base:>8.2f} {1.0:>6.2f}")
    print(f"{'this':<10} {this:>8.2f} {this / base:>6.2f}")

    # a project that needs a stand-in: its private installation copy, built and reused
    project = Path(tempfile.mkdtemp(prefix="rlscheck-bench-"))
    cache = Path(tempfile.mkdtemp(prefix="rlscheck-bench-cache-"))
    os.chmod(cache, 0o755)
    try:
        (project / "supabase" / "migrations").mkdir(parents=True)
        (project / "supabase" / "migrations" / "20240101000000_hooks.sql").write_text(
            "create extension if not exists pg_net with schema extensions;\n"
            "create table public.events (id bigint primary key, owner uuid default auth.uid());\n"
            "alter table public.events enable row level security;\n"
            "create policy own on public.events for all to authenticated using ((select auth.uid()) = owner);\n"
        )
        env = {"RLSCHECK_CACHE_DIR": str(cache)}
        first = _run(ROOT, project, env)
        again = [_run(ROOT, project, env) for _ in range(max(3, args.runs // 2))]
        reused = statistics.median(again)
        print("\na project with a stand-in (pg_net): the private installation copy")
        print(f"{'run':<28} {'seconds':>8} {'ratio':>6}")
        print(f"{'first (copy built)':<28} {first:>8.2f} {first / reused:>6.2f}")
        print(f"{'later (copy reused, median)':<28} {reused:>8.2f} {1.0:>6.2f}")
    finally:
        shutil.rmtree(project, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
