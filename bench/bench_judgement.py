"""Precision on the judged schemas of tests/schemas: what the sweep reports at error and warn
on realistic projects, against what a reader of their SQL expects.

    python bench/bench_judgement.py [--jobs 2]

Each schema is run as a user runs it (``pytest --rlscheck``, zero-config). Per rule: the
findings at error/warn, those judged right (rule, object and severity expected), precision
(right / found), false errors (an error not expected at error), and the expected findings
missed (at that severity), with recall. Then, schema by schema, every difference.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from pytest_rlscheck.rules import RULES  # noqa: E402
from judged_schemas import Judgement, judge, schemas, sweep  # noqa: E402


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.2f}" if b else "—"


def table(judgements: list[Judgement]) -> None:
    found: dict[str, int] = defaultdict(int)
    right: dict[str, int] = defaultdict(int)
    false_errors: dict[str, int] = defaultdict(int)
    expected: dict[str, int] = defaultdict(int)
    missed: dict[str, int] = defaultdict(int)
    for j in judgements:
        for _, rule, _ in j.judged_found:
            found[rule] += 1
        for _, rule, _ in j.right:
            right[rule] += 1
        for sev, rule, obj in j.unexpected:
            false_errors[rule] += sev == "error"
        for _, rule, _ in [*j.schema.judged, *j.schema.known_misses]:
            expected[rule] += 1
        for _, rule, _ in [*j.missing, *j.known_missed]:
            missed[rule] += 1
    rules = sorted(r for r in RULES if found[r] or expected[r])
    print(f"\nPrecision on the judged schemas ({len(judgements)} projects of tests/schemas, findings at error/warn)")
    header = f"{'rule':<26} {'found':>5} {'right':>5} {'precision':>9} {'false errors':>12} {'expected':>8} {'missed':>6} {'recall':>6}"
    print(header)
    for rule in rules:
        print(f"{rule:<26} {found[rule]:>5} {right[rule]:>5} {_ratio(right[rule], found[rule]):>9} {false_errors[rule]:>12} "
              f"{expected[rule]:>8} {missed[rule]:>6} {_ratio(expected[rule] - missed[rule], expected[rule]):>6}")
    t = {k: sum(d.values()) for k, d in
         {"found": found, "right": right, "fe": false_errors, "expected": expected, "missed": missed}.items()}
    print(f"{'total':<26} {t['found']:>5} {t['right']:>5} {_ratio(t['right'], t['found']):>9} {t['fe']:>12} "
          f"{t['expected']:>8} {t['missed']:>6} {_ratio(t['expected'] - t['missed'], t['expected']):>6}")
    infos = sum(len(j.schema.info) for j in judgements)
    missing_info = sum(len(j.missing_info) for j in judgements)
    print(f"expected info findings present: {infos - missing_info} / {infos}")
    print("\nDifferences, schema by schema")
    for j in judgements:
        print(f"{j.schema.name}: " + ("none" if not (j.unexpected or j.missing or j.missing_info) else "\n" + j.explain())
              + "".join(f"\n  known miss: {k[0]} {k[1]} {k[2]} ({j.schema.known_misses[k]})" for k in sorted(j.known_missed)))


def precision(jobs: int = 2) -> None:
    """Run every judged schema (``jobs`` at a time) and print the table."""
    with ThreadPoolExecutor(jobs) as pool:
        judgements = list(pool.map(lambda s: judge(s, sweep(s)), schemas()))
    table(judgements)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    precision(args.jobs)


if __name__ == "__main__":
    main()
