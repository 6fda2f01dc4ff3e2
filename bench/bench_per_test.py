"""Per-test cost of a user-written isolation test against plain psycopg, in one run.

    python bench/bench_per_test.py [--tests 500] [--runs 5] [--src OTHER_TREE/src]

The workload (issue 14): N tests, each

    def test_x(rls):
        with rls.as_user(SUB):
            rls.scalar("select count(*) from conversations")

on the worked example (sql/migrations, sql/seed.sql). The floor is the same count by plain
psycopg: a session-scoped connection (to a clone of the same template, on the same
server), one transaction per test, PostgREST's ``set_config`` impersonation, the count,
ROLLBACK.

Each figure is a whole pytest process (``-p no:cacheprovider``, bytecode caching on, as
users have it). The marginal cost of a test is (t(2N) - t(N)) / N: what the fixed costs
(imports, server start, template build) do not explain. Runs alternate ours and the floor;
medians of ``--runs``. ``--src`` measures another tree's plugin (e.g. a worktree of HEAD)
with the same generated files.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUB = "11111111-1111-1111-1111-111111111111"
QUERY = "select count(*) from conversations"

PYPROJECT = f"""\
[tool.pytest.ini_options]
addopts = "-p no:cacheprovider"

[tool.rlscheck]
migrations = ["{ROOT / 'sql/migrations'}"]
seed = ["{ROOT / 'sql/seed.sql'}"]

[tool.rlscheck.principals.alice]
sub = "{SUB}"
"""

OURS = '''
def test_x{i}(rls):
    with rls.as_user("{sub}"):
        rls.scalar("{query}")
'''

FLOOR_HEAD = f'''
import json

import pytest

CLAIMS = json.dumps({{"sub": "{SUB}", "role": "authenticated"}})
IMPERSONATE = "select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)"


@pytest.fixture(scope="session")
def floor_connection(rlscheck_session):
    """A plain connection to a clone of the same template, on the same server."""
    database = rlscheck_session.fresh_database()
    conn = database.connect(autocommit=False)
    yield conn
    conn.close()


@pytest.fixture
def floor(floor_connection):
    yield floor_connection
    floor_connection.rollback()
'''

FLOOR = '''
def test_x{i}(floor):
    floor.execute(IMPERSONATE, [CLAIMS])
    floor.execute("{query}").fetchone()
'''

#: The floor with every setting PostgREST sets per request (what ``as_user`` sets too):
#: search_path and the role's timeouts cost the server more than role and claims alone.
FLOOR_REQUEST = '''
def test_x{i}(floor):
    floor.execute(REQUEST, [CLAIMS])
    floor.execute("{query}").fetchone()
'''
REQUEST_SQL = (
    "select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true),"
    " set_config('search_path', '\"public\", \"extensions\"', true), set_config('statement_timeout', '8s', true),"
    " set_config('lock_timeout', '8s', true), set_config('request.method', 'GET', true),"
    " set_config('request.path', '/', true), set_config('request.headers', '{\"accept\": \"application/json\"}', true),"
    " set_config('request.cookies', '{}', true)"
)
REQUEST_HEAD = FLOOR_HEAD + f"\nREQUEST = {REQUEST_SQL!r}\n"

WORKLOADS = {"ours": ("", OURS), "floor": (FLOOR_HEAD, FLOOR), "floor_request": (REQUEST_HEAD, FLOOR_REQUEST)}


def _write(directory: Path, kind: str, n: int) -> Path:
    head, body = WORKLOADS[kind]
    path = directory / f"test_{kind}_{n}.py"
    path.write_text(head + "".join(body.format(i=i, sub=SUB, query=QUERY) for i in range(n)))
    return path


def _run(project: Path, test_file: Path, src: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(src)
    command = [sys.executable, "-m", "pytest", "-q", str(test_file.name)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{test_file.name}: pytest exited {done.returncode}\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return elapsed


def per_test_rows(n: int = 500, *, runs: int = 5, src: Path = ROOT / "src") -> list[tuple[str, float, float, float]]:
    """(workload, ours ms, floor ms, ratio): the marginal cost of one test."""
    with tempfile.TemporaryDirectory(prefix="rlscheck-bench-") as tmp:
        project = Path(tmp)
        (project / "pyproject.toml").write_text(PYPROJECT)
        files = {(kind, size): _write(project, kind, size) for kind in WORKLOADS for size in (n, 2 * n)}
        for path in files.values():  # warm-up: bytecode of the test files and the plugin
            _run(project, path, src)
        marginal: dict[str, list[float]] = {kind: [] for kind in WORKLOADS}
        for _ in range(runs):
            for kind in WORKLOADS:  # alternating, so that drift hits both alike
                small = _run(project, files[kind, n], src)
                large = _run(project, files[kind, 2 * n], src)
                marginal[kind].append((large - small) / n * 1000)
    ours, floor, request = (statistics.median(marginal[kind]) for kind in WORKLOADS)
    workload = f"{n} user-written isolation tests, marginal ms per test (rls + as_user + one count)"
    return [
        (f"{workload}; floor: role + claims", ours, floor, ours / floor),
        (f"{workload}; floor: every setting of a PostgREST request", ours, request, ours / request),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the plugin's tree to measure (its src/)")
    args = parser.parse_args()
    rows = per_test_rows(args.tests, runs=args.runs, src=args.src)
    print(f"\nplugin: {args.src}; medians of {args.runs}, whole pytest runs of N and 2N tests")
    print(f"| workload | ours | floor (plain psycopg) | ratio |\n|---|---|---|---|")
    for workload, ours, floor, ratio in rows:
        print(f"| {workload} | {ours:.3f} ms | {floor:.3f} ms | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
