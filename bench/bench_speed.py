"""Issue 14's goals, side by side in one run:

    python bench/bench_speed.py [--runs 3] [--tests 500] [--only example|generated]

1. The marginal cost of a user-written isolation test (``rls`` + ``as_user`` + one count)
   against plain psycopg with the same impersonation (:mod:`bench_per_test`; goal ≤ 1.10×).
2. ``pytest --rlscheck -m rlscheck`` cold — the template not in the cache
   (``--rlscheck-cache-clear``), the per-installation cluster there, as after any edit of a
   migration — against the shell floor (initdb, start, shim, migrations, seed, stop:
   :func:`speed_floor.shell_floor`; goal ≤ 1.30×).
3. The second run with nothing changed (the cached template) against that cold run (goal
   ≤ 0.50×).

2 and 3 on the worked example (a project of its own: sql/ and the [tool.rlscheck] tables,
none of the repository's tests) and on a generated project of 100 migrations and 200 tables
(:mod:`project_generator`). Floor, cold and second run alternate; medians of ``--runs``.
Each run's header is checked: the cold one must say the template is to be built, the
second that it is cached.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_per_test import per_test_rows  # noqa: E402
from speed_floor import generate_project, run_pytest, shell_floor, worked_example  # noqa: E402

COLD_HEADER = "template to be built"
CACHED_HEADER = "rlscheck: cached template (key "


def _runs(project: Path, cache: Path, runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"floor": [], "cold": [], "second": []}
    for _ in range(runs):  # alternating, so that drift hits all three alike
        samples["floor"].append(shell_floor(project))
        seconds, out = run_pytest(project, cache, args=("-v", "--rlscheck-cache-clear"))  # -v: with -q, the header
        if COLD_HEADER not in out:
            raise SystemExit(f"the cold run did not build its template:\n{out[:2000]}")
        samples["cold"].append(seconds)
        seconds, out = run_pytest(project, cache, args=("-v",))
        if CACHED_HEADER not in out:
            raise SystemExit(f"the second run did not use the cached template:\n{out[:2000]}")
        samples["second"].append(seconds)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tests", type=int, default=500)
    parser.add_argument("--only", choices=("example", "generated"))
    parser.add_argument("--no-per-test", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="rlscheck-speed-"))
    cache = Path(tempfile.mkdtemp(prefix="rlscheck-speed-cache-"))
    os.chmod(workdir, 0o755)
    os.chmod(cache, 0o755)  # the server's account copies from it
    try:
        projects = []
        if args.only in (None, "example"):
            projects.append(("worked example (2 migrations)", worked_example(workdir / "example")))
        if args.only in (None, "generated"):
            projects.append(("generated (100 migrations, 200 tables)", generate_project(workdir / "generated")))
        rows = []
        for name, project in projects:
            run_pytest(project, cache)  # the developer's first run ever: the cluster cache, bytecode
            shell_floor(project)
            samples = _runs(project, cache, args.runs)
            medians = {kind: statistics.median(values) for kind, values in samples.items()}
            rows.append((name, medians))
            print(f"  {name}: " + "; ".join(f"{k} " + " ".join(f"{v:.2f}" for v in vs) for k, vs in samples.items()),
                  flush=True)
        per_test = [] if args.no_per_test else per_test_rows(args.tests, runs=max(3, args.runs))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)

    if per_test:
        print("\nper test (goal ≤ 1.10×)")
        print("| workload | ours | plain psycopg | ratio |\n|---|---|---|---|")
        for workload, ours, floor, ratio in per_test:
            print(f"| {workload} | {ours:.2f} ms | {floor:.2f} ms | {ratio:.2f}× |")
    print(f"\n`pytest --rlscheck -m rlscheck`, whole processes, medians of {args.runs} (goals: cold ≤ 1.30× the floor, "
          "second ≤ 0.50× cold)")
    print("| project | shell floor | cold (template built) | cold / floor | second run (cached template) | second / cold |")
    print("|---|---|---|---|---|---|")
    for name, m in rows:
        print(f"| {name} | {m['floor']:.2f} s | {m['cold']:.2f} s | {m['cold'] / m['floor']:.2f}× | "
              f"{m['second']:.2f} s | {m['second'] / m['cold']:.2f}× |")


if __name__ == "__main__":
    main()
