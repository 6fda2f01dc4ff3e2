"""The sweep: what it catches, what it costs. One run, three tables.

    python bench/bench_sweep.py [--tables 500] [--runs 3]

1. Detection: each broken variant of sql/variants applied on top of the example; per rule,
   the variants that expect it and how many the sweep caught, plus false positives. Next to
   it, precision on the judged schemas of tests/schemas (bench_judgement.py).
2. Cost on the example: a pytest run of one test with and without --rlscheck (whole runs,
   server start included, median of --runs), side by side.
3. Scale: the sweep (catalog, static rules, dynamic rules) over the example plus a generated
   schema of --tables tables with 4 policies each and rows of both tenants, what synthesizing
   principals and rows for all of them costs (as for a project without either), and the
   number of catalog queries for 10 tables and for all of them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from pytest_rlscheck.catalog import Catalog  # noqa: E402
from pytest_rlscheck.client import Rls  # noqa: E402
from pytest_rlscheck.config import load_settings  # noqa: E402
from pytest_rlscheck.rules import RULES  # noqa: E402
from pytest_rlscheck.session import RlsSession  # noqa: E402
from pytest_rlscheck.sweep import Sweep  # noqa: E402
from pytest_rlscheck.synthesis import synthesize  # noqa: E402
from sweep_variants import findings_after, variants  # noqa: E402

POLICY = "organization_id in (select private.get_user_organization_ids((select auth.uid())))"


def detection(session: RlsSession) -> None:
    rls = Rls(session.worker_connection(), session.worker_database(), transactional=True, config=session.settings.sweep)
    expected: dict[str, int] = defaultdict(int)
    caught: dict[str, int] = defaultdict(int)
    false_positives: list[str] = []
    for variant in variants():
        transaction = rls.test_transaction().begin()
        try:
            found = findings_after(rls, Sweep(session), variant.sql)
        finally:
            transaction.end()
        for rule in {r for r, _ in variant.expected}:
            expected[rule] += 1
            wanted = {f for f in variant.expected if f[0] == rule}
            caught[rule] += wanted <= found
        false_positives += [f"{variant.name}: {rule} {obj}" for rule, obj in sorted(found - set(variant.expected))]
    print("\n1. Detection on the broken variants of sql/variants")
    print(f"{'rule':<26} {'caught / variants':>17}")
    for rule in sorted(RULES):
        if expected[rule]:
            print(f"{rule:<26} {caught[rule]:>8} / {expected[rule]:<7}")
        else:  # migration-failed, constraint-*: proven by tests of their own
            print(f"{rule:<26} {'(see tests/test_sweep.py, tests/test_fuzz.py)':>17}")
    traps = [v.name for v in variants() if not v.expected]
    print(f"trap variants (must find nothing): {', '.join(traps)}")
    print(f"false positives: {len(false_positives)}" + "".join(f"\n  {f}" for f in false_positives))


def run_seconds(args: list[str], cwd: Path, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=cwd,
                       capture_output=True, check=False)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def example_cost(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        test = Path(tmp) / "test_one.py"
        test.write_text("def test_one(rls):\n    assert rls.scalar('select count(*) from conversations') == 2132\n")
        common = [str(test), f"--rootdir={ROOT}", f"-c={ROOT / 'pyproject.toml'}"]
        plain = run_seconds(common, ROOT, runs)
        swept = run_seconds([*common, "--rlscheck"], ROOT, runs)
    print(f"\n2. Cost of --rlscheck on the example (whole pytest runs, median of {runs})")
    print(f"{'run':<44} {'seconds':>8}")
    print(f"{'one test using rls':<44} {plain:>8.2f}")
    print(f"{'the same with --rlscheck (the sweep items)':<44} {swept:>8.2f}")
    print(f"{'added by the sweep':<44} {swept - plain:>8.2f}")


def generated_schema(tables: int) -> tuple[str, str]:
    ddl, seed = [], []
    for i in range(tables):
        t = f"public.gen_{i:04d}"
        ddl.append(
            f"create table {t} (id bigint generated always as identity primary key,"
            f" organization_id uuid not null references public.organizations (id), payload jsonb not null default '{{}}');\n"
            f"create index on {t} (organization_id);\nalter table {t} enable row level security;\n"
            + "".join(
                f"create policy {t.split('.')[1]}_{cmd} on {t} for {cmd} to authenticated "
                + ("with check" if cmd == "insert" else "using")
                + f" ({POLICY});\n"
                for cmd in ("select", "insert", "update", "delete")
            )
        )
        seed.append(
            f"insert into {t} (organization_id) select o from unnest(array['aaaaaaaa-0000-0000-0000-000000000001',"
            f" 'bbbbbbbb-0000-0000-0000-000000000002']::uuid[]) o, generate_series(1, 3);\n"
        )
    return "".join(ddl), "".join(seed) + "analyze;\n"


def scale(tables: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ddl, data = generated_schema(tables)
        migration = Path(tmp) / "20990101000000_generated.sql"
        migration.write_text(ddl)
        seed = Path(tmp) / "generated_seed.sql"
        seed.write_text(data)
        base = load_settings(rootdir=ROOT, invocation_dir=ROOT, pyproject=ROOT / "pyproject.toml")
        settings = replace(base, migrations=(*base.migrations, migration), seed=(*base.seed, seed))
        session = RlsSession(settings)
        try:
            started = time.perf_counter()
            session.worker_database()
            build = time.perf_counter() - started
            conn = session.worker_connection()
            rls = Rls(conn, session.worker_database(), transactional=True, config=settings.sweep)
            sweep = Sweep(session)
            started = time.perf_counter()
            sweep.prepare(conn)
            static = time.perf_counter() - started
            transaction = rls.test_transaction().begin()
            started = time.perf_counter()
            results = sweep.run_all(rls)
            dynamic = time.perf_counter() - started
            transaction.end()
            # what a project without principals or seed costs: two users, tenants, a row each everywhere
            transaction = rls.test_transaction().begin()
            started = time.perf_counter()
            made = synthesize(conn, sweep.ctx.catalog, settings.sweep, [], [])
            synthesis = time.perf_counter() - started
            transaction.end()
            counts = {n: _catalog_queries(conn, n) for n in (10, tables)}
        finally:
            session.close()
    findings = sum(len(r.findings) for r in results)
    print(f"\n3. Scale: the example plus {tables} generated tables, 4 policies each, 6 rows each")
    print(f"{'step':<52} {'seconds':>8}")
    print(f"{'build (server, migrations, seed) — not the sweep':<52} {build:>8.2f}")
    print(f"{'catalog read + static rules (' + str(len(sweep.checks)) + ' checks)':<52} {static:>8.2f}")
    print(f"{'dynamic rules: auth-per-row + tenant-leak, every table':<52} {dynamic:>8.2f}")
    print(f"{'sweep total':<52} {static + dynamic:>8.2f}")
    print(f"{'synthesis, no principals nor seed (' + str(sum(made.rows.values())) + ' rows)':<52} {synthesis:>8.2f}")
    print(f"findings: {findings}; catalog queries for 10 tables: {counts[10]}, for {tables}: {counts[tables]}")


def _catalog_queries(conn, tables: int) -> int:
    class Counting:
        count = 0
        info = conn.info

        def execute(self, *args, **kwargs):
            Counting.count += 1
            return conn.execute(*args, **kwargs)

    names = [f"gen_{i:04d}" for i in range(tables)]
    oids = [r[0] for r in conn.execute("select oid from pg_class where relname = any(%s)", [names]).fetchall()]
    Catalog.load(Counting(), oids=oids, functions=False)
    return Counting.count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings = load_settings(rootdir=ROOT, invocation_dir=ROOT, pyproject=ROOT / "pyproject.toml")
    session = RlsSession(settings)
    try:
        detection(session)
    finally:
        session.close()
    from bench_judgement import precision  # beside this file
    precision()
    example_cost(args.runs)
    scale(args.tables)


if __name__ == "__main__":
    main()
