"""Foundation benchmark: what isolation and setup cost, side by side in one run.

    python bench/bench_foundation.py [--tests 400] [--clones 20]

Prints three tables:
  1. per-test overhead of the ``rls`` fixture, measured by pytest itself (setup + teardown
     of each test) against tests that use no fixture, in the same pytest run;
  2. the database round trips behind it, against a bare ``select 1``;
  3. one-off costs: server start, template build (the worked example), worker clone, and a
     fresh database per test with both CREATE DATABASE strategies.
Medians over many repetitions; the machine is noisy, so read the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pytest_rlscheck.client import Rls  # noqa: E402
from pytest_rlscheck.config import load_settings  # noqa: E402
from pytest_rlscheck.session import RlsSession  # noqa: E402


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


class _Durations:
    """A pytest plugin that records setup + teardown time per test."""

    def __init__(self) -> None:
        self.by_test: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when in ("setup", "teardown"):
            self.by_test[report.nodeid] = self.by_test.get(report.nodeid, 0.0) + report.duration


def fixture_overhead(n: int) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "test_overhead.py"
        path.write_text(
            textwrap.dedent(
                f"""
                import pytest

                @pytest.mark.parametrize("i", range({n}))
                def test_plain(i):
                    pass

                @pytest.mark.parametrize("i", range({n}))
                def test_rls(rls, i):
                    pass

                @pytest.mark.parametrize("i", range({n}))
                def test_rls_as_user(rls, i):
                    with rls.as_user("11111111-1111-1111-1111-111111111111"):
                        pass
                """
            )
        )
        durations = _Durations()
        code = pytest.main(
            [str(path), "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
             "--rlscheck-migrations", str(ROOT / "sql/migrations"), "--rlscheck-seed", str(ROOT / "sql/seed.sql")],
            plugins=[durations],
        )
        assert code == 0, code
    groups: dict[str, list[float]] = {"plain": [], "rls": [], "rls_as_user": []}
    for nodeid, seconds in durations.by_test.items():
        name = nodeid.split("::")[1].split("[")[0].removeprefix("test_")
        groups[name].append(seconds)
    # the first rls test pays for the server and template: report it separately
    first = groups["rls"].pop(0)
    return [(k, _median_ms(v)) for k, v in groups.items()] + [("first rls test (server + template)", first * 1000)]


def round_trips(session: RlsSession, n: int) -> list[tuple[str, float]]:
    conn = session.worker_connection()
    database = session.worker_database()

    def timed(fn) -> float:
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return _median_ms(samples)

    bare = timed(lambda: conn.execute("select 1").fetchone())
    client = Rls(conn, database, transactional=True)

    def cycle() -> None:
        transaction = client.test_transaction().begin()
        transaction.end()

    cycle_ms = timed(cycle)
    transaction = client.test_transaction().begin()
    wrapped = timed(lambda: client.execute("select 1").fetchone())

    def impersonation() -> None:
        with client.as_user("11111111-1111-1111-1111-111111111111"):
            pass

    impersonate = timed(impersonation)
    with client.as_user("11111111-1111-1111-1111-111111111111"):
        # one PostgREST request: savepoint, pre-request check, safeupdate, commit-time checks
        request = timed(lambda: client.execute("select 1").fetchone())
        update = timed(lambda: client.execute("update conversations set ended_at = ended_at where false").rowcount)
    owner_update = timed(lambda: client.execute("update conversations set ended_at = ended_at where false").rowcount)
    transaction.end()
    return [
        ("bare query: select 1", bare),
        ("test transaction: begin + rollback", cycle_ms),
        ("rls.execute (savepoint-wrapped select 1)", wrapped),
        ("as_user enter + exit", impersonate),
        ("rls.execute in as_user (a request: select 1)", request),
        ("rls.execute update as the owner", owner_update),
        ("rls.execute update in as_user (a request)", update),
    ]


def one_off_costs(clones: int) -> list[tuple[str, float]]:
    settings = load_settings(rootdir=ROOT, invocation_dir=ROOT, pyproject=ROOT / "pyproject.toml")
    session = RlsSession(settings)
    try:
        t = time.perf_counter()
        server = session.server
        start = time.perf_counter() - t
        t = time.perf_counter()
        template = session.template()
        build = time.perf_counter() - t
        t = time.perf_counter()
        session.worker_database()
        worker = time.perf_counter() - t
        results = [("server start (initdb + pg_ctl start)", start * 1000), ("template build (example)", build * 1000),
                   ("worker database clone", worker * 1000)]
        for strategy in ("WAL_LOG", "FILE_COPY"):
            samples = []
            for i in range(clones):
                name = f"rlscheck_{session.run_id}_bench{i}"
                t = time.perf_counter()
                with server.admin() as conn:
                    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY {}").format(
                        sql.Identifier(name), sql.Identifier(template), sql.SQL(strategy)))
                    conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
                samples.append(time.perf_counter() - t)
            results.append((f"fresh database create + drop, STRATEGY {strategy}", _median_ms(samples)))
        results.extend(round_trips(session, 2000))
        return results
    finally:
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=400)
    parser.add_argument("--clones", type=int, default=20)
    args = parser.parse_args()

    costs = one_off_costs(args.clones)
    overhead = fixture_overhead(args.tests)
    plain = overhead[0][1]
    bare = next(ms for name, ms in costs if name.startswith("bare query"))

    print(f"\n1. Per-test overhead measured by pytest (setup + teardown, median of {args.tests} tests each)")
    print(f"{'test kind':<40} {'ms/test':>9} {'minus plain':>12}")
    for name, ms in overhead:
        print(f"{name:<40} {ms:>9.3f} {ms - plain:>12.3f}")
    print("\n2. Database round trips (median of 2000)")
    print(f"{'operation':<45} {'ms':>8} {'x bare query':>13}")
    for name, ms in costs[5:]:
        print(f"{name:<45} {ms:>8.3f} {ms / bare:>13.1f}")
    print("\n3. One-off costs")
    print(f"{'step':<50} {'ms':>9}")
    for name, ms in costs[:5]:
        print(f"{name:<50} {ms:>9.1f}")


if __name__ == "__main__":
    main()
