"""Fuzzing cost: 200 payloads per constraint, and how long finding + shrinking takes.

    python bench/bench_fuzz.py [--examples 200] [--runs 3]

One run, one table: for each metadata column of the worked example, the time of
`fuzz_constraint` with the documented rules as the oracle (no failure: every example runs),
next to the time of the bare inserts it makes; then, for each broken variant of the
fuzzing tests, the time to find the defect and shrink it, and the shrunk payload.
Medians of --runs; each run starts from an empty .hypothesis database.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from hypothesis import settings  # noqa: E402
from hypothesis.database import DirectoryBasedExampleDatabase  # noqa: E402

from pytest_rlscheck.client import Rls  # noqa: E402
from pytest_rlscheck.config import load_settings  # noqa: E402
from pytest_rlscheck.fuzz import FuzzFailure, _Target, show  # noqa: E402
from pytest_rlscheck.session import RlsSession  # noqa: E402
from test_fuzz import conversations_oracle, messages_oracle  # noqa: E402

BROKEN = {
    "cast raises (::numeric on any string)": (
        "messages",
        None,
        ["alter table messages drop constraint messages_metadata_response_time_positive",
         "alter table messages add constraint rt check ((metadata ->> 'response_time_ms')::numeric > 0)"],
    ),
    "NULL passes jsonb_typeof(...) = 'object'": (
        "messages",
        messages_oracle,
        ["alter table messages alter column metadata drop not null",
         "alter table messages drop constraint messages_metadata_is_object",
         "alter table messages add constraint obj check (jsonb_typeof(metadata) = 'object')"],
    ),
    "status checked only when a string": (
        "conversations",
        conversations_oracle,
        ["alter table conversations drop constraint conversations_metadata_status_valid",
         "alter table conversations add constraint st check (jsonb_typeof(metadata -> 'status') <> 'string'"
         " or (metadata ->> 'status') in ('active', 'waiting', 'resolved', 'closed'))"],
    ),
    "length in bytes, not characters": (
        "conversations",
        conversations_oracle,
        ["alter table conversations drop constraint conversations_metadata_language_length",
         "alter table conversations add constraint lang check (not (metadata ? 'language') or"
         " (jsonb_typeof(metadata -> 'language') = 'string' and octet_length(metadata ->> 'language') <= 10))"],
    ),
}


_DIRECTORIES: list[str] = []


def fresh_database() -> None:
    """An empty example database, so that no run replays another's failure."""
    directory = tempfile.mkdtemp(prefix="rlscheck-bench-hypothesis-")
    _DIRECTORIES.append(directory)
    settings.register_profile("bench", database=DirectoryBasedExampleDatabase(directory))
    settings.load_profile("bench")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    config = load_settings(rootdir=ROOT, invocation_dir=ROOT, pyproject=ROOT / "pyproject.toml")
    session = RlsSession(config)
    try:
        rls = Rls(session.worker_connection(), session.worker_database(), transactional=True, config=config.sweep)
        print(f"\n1. {args.examples} payloads per constraint (oracle: the documented rules), median of {args.runs}")
        print(f"{'column':<24} {'fuzz s':>7} {'inserts s':>9} {'hypothesis share':>16} {'examples/s':>10}")
        for table, oracle in (("conversations", conversations_oracle), ("messages", messages_oracle)):
            fuzz_s, insert_s = [], []
            for _ in range(args.runs):
                fresh_database()
                transaction = rls.test_transaction().begin()
                target = _Target(rls, table, "metadata", None)
                started = time.perf_counter()
                result = rls.fuzz_constraint(table, "metadata", oracle=oracle, max_examples=args.examples)
                fuzz_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                for _ in range(result.examples):
                    target.attempt({"status": "active"} if table == "conversations" else {"sentiment": "neutral"})
                insert_s.append(time.perf_counter() - started)
                transaction.end()
            f, i = statistics.median(fuzz_s), statistics.median(insert_s)
            print(f"{table + '.metadata':<24} {f:>7.2f} {i:>9.2f} {1 - i / f:>15.0%} {args.examples / f:>10.0f}")

        print(f"\n2. Broken variants: time to find and shrink (median of {args.runs}), and the shrunk payload")
        print(f"{'variant':<42} {'seconds':>8}  shrunk payload")
        for name, (table, oracle, statements) in BROKEN.items():
            times, payload = [], None
            for _ in range(args.runs):
                fresh_database()
                transaction = rls.test_transaction().begin()
                for statement in statements:
                    rls.execute(statement)
                started = time.perf_counter()
                try:
                    rls.fuzz_constraint(table, "metadata", oracle=oracle, max_examples=args.examples * 2)
                    payload = "NOT FOUND"
                except FuzzFailure as exc:
                    payload = show(exc.payload)
                times.append(time.perf_counter() - started)
                transaction.end()
            print(f"{name:<42} {statistics.median(times):>8.2f}  {payload}")
    finally:
        session.close()
        for directory in _DIRECTORIES:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
