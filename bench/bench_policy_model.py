"""The policy model's cost: reading every policy's analysed tree into facts, against the
catalog read it is part of. One run, one table.

    python bench/bench_policy_model.py [--tables 500] [--runs 5]

For --tables generated tables with 4 policies each, in two shapes: the same condition on
every table (as projects copy a membership check: each distinct tree is read once), and a
condition of its own for every policy (a constant that differs: every tree is read). Per shape:
the whole ``Catalog.load`` (relations, columns, constraints, indexes, policies with their
facts, grants, functions), the part of it spent on the trees (parse and facts), and that
part's share. Median of --runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pytest_rlscheck import catalog_loader  # noqa: E402
from pytest_rlscheck.catalog import Catalog  # noqa: E402
from pytest_rlscheck.config import load_settings  # noqa: E402
from pytest_rlscheck.session import RlsSession  # noqa: E402

SAME = "organization_id in (select private.get_user_organization_ids((select auth.uid())))"
OWN = "organization_id in (select private.get_user_organization_ids((select auth.uid()))) or payload ->> 'k' = '{i}'"


def schema(tables: int, condition: str) -> str:
    out = []
    for i in range(tables):
        t = f"public.pm_{i:04d}"
        out.append(
            f"create table {t} (id bigint generated always as identity primary key,"
            f" organization_id uuid not null references public.organizations (id), payload jsonb not null default '{{}}');\n"
            f"alter table {t} enable row level security;\n"
            + "".join(
                f"create policy p_{cmd} on {t} for {cmd} to authenticated "
                + ("with check" if cmd == "insert" else "using")
                + f" ({condition.format(i=f'{i}-{cmd}')});\n"
                for cmd in ("select", "insert", "update", "delete")
            )
        )
    return "".join(out)


class Timed:
    """Time spent in the tree reading functions the loader calls."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
        return timed


def measure(tables: int, condition: str, runs: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        migration = Path(tmp) / "20990101000000_generated.sql"
        migration.write_text(schema(tables, condition))
        base = load_settings(rootdir=ROOT, invocation_dir=ROOT, pyproject=ROOT / "pyproject.toml")
        session = RlsSession(replace(base, migrations=(*base.migrations, migration)))
        try:
            conn = session.worker_connection()
            totals, trees = [], []
            for _ in range(runs):
                timer = Timed()
                originals = (catalog_loader.parse, catalog_loader.expression_facts)
                catalog_loader.parse, catalog_loader.expression_facts = map(timer.wrap, originals)
                try:
                    started = time.perf_counter()
                    Catalog.load(conn, schemas=["public"], functions=True)
                    totals.append(time.perf_counter() - started)
                finally:
                    catalog_loader.parse, catalog_loader.expression_facts = originals
                trees.append(timer.seconds)
        finally:
            session.close()
    return statistics.median(totals), statistics.median(trees)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"Catalog.load of {args.tables} tables x 4 policies (median of {args.runs})")
    print(f"{'policies':<35} {'load s':>7} {'trees s':>8} {'share':>6}")
    for label, condition in (("the same condition on every table", SAME), ("a condition of its own per policy", OWN)):
        total, trees = measure(args.tables, condition, args.runs)
        print(f"{label:<35} {total:>7.3f} {trees:>8.3f} {trees / total:>6.0%}")


if __name__ == "__main__":
    main()
