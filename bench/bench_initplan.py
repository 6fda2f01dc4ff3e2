"""How many times auth.uid() runs for one `select * from conversations`, before and after
the optimisation migration, as the table grows. One run, side by side.

    python bench/bench_initplan.py [--repeat 5]

"before" is the first migration's SELECT policy on conversations (auth.uid() inside a
correlated EXISTS, once per row); "after" is the optimised one ((select auth.uid()) in an
InitPlan). Both are measured on the same database, in savepoints that are rolled back,
acting as alice (Acme) through the plugin's own EXPLAIN ANALYZE reading. Rows are cut
down to N by deleting conversations (their messages go with them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pytest_rlscheck.client import Rls  # noqa: E402
from pytest_rlscheck.config import load_settings  # noqa: E402
from pytest_rlscheck.session import RlsSession  # noqa: E402

ALICE = "11111111-1111-1111-1111-111111111111"
SIZES = (10, 100, 1000, 2132)
STATEMENT = "select * from conversations"
OLD = (ROOT / "sql/migrations/20240101000000_chat_schema.sql").read_text()


def old_policy_sql() -> str:
    start = OLD.index('create policy "Members can view conversations"')
    return OLD[start : OLD.index(";", start)]


def measure(rls: Rls, repeat: int) -> tuple[int, float]:
    """(auth.uid() evaluations, median execution ms) of the statement as alice."""
    plans = [rls.explain(STATEMENT, as_user=ALICE) for _ in range(repeat)]
    assert len({p.evaluations("auth.uid") for p in plans}) == 1
    return plans[0].evaluations("auth.uid"), statistics.median(p.execution_ms for p in plans)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    settings = load_settings(rootdir=ROOT, invocation_dir=ROOT, pyproject=ROOT / "pyproject.toml")
    session = RlsSession(settings)
    rows = []
    server = ""
    try:
        server = session.server.description
        rls = Rls(session.worker_connection(), session.worker_database(), transactional=True, config=settings.sweep)
        transaction = rls.test_transaction().begin()
        for size in SIZES:
            with rls.connection.transaction():
                rls.execute(
                    "delete from conversations where id not in (select id from conversations order by id limit %s)",
                    [size],
                )
                rls.execute("analyze conversations, messages")
                assert rls.scalar("select count(*) from conversations") == size
                visible = rls.explain(STATEMENT, as_user=ALICE).root.rows
                after = measure(rls, args.repeat)
                rls.execute("drop policy conversations_select on conversations")
                rls.execute(old_policy_sql())
                before = measure(rls, args.repeat)
                rows.append((size, int(visible), before, after))
                raise psycopg.Rollback()
        transaction.end()
    finally:
        session.close()

    print(f"\nauth.uid() evaluations for `{STATEMENT}` as alice, read from EXPLAIN ANALYZE")
    print(f"server: {server}; times: median execution of {args.repeat} runs")
    print(f"{'rows in table':>13} {'visible':>8} | {'evaluations before':>18} {'after':>6} | "
          f"{'ms before':>9} {'ms after':>8} {'speed-up':>8}")
    for size, visible, (ev_before, ms_before), (ev_after, ms_after) in rows:
        print(f"{size:>13,} {visible:>8,} | {ev_before:>18,} {ev_after:>6,} | "
              f"{ms_before:>9.2f} {ms_after:>8.2f} {ms_before / ms_after:>7.1f}x")
    print("before: the policy's subquery runs per row and calls auth.uid() for each membership row it"
          " examines (2 in the seed); after: one InitPlan per statement.")


if __name__ == "__main__":
    main()
