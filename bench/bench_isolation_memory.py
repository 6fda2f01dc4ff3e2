"""Isolation checks on big tables: time and peak memory against the other tenant's row count.

    python bench/bench_isolation_memory.py [--small 10000] [--large 1000000] [--own 1000]

Builds the worked example once, adds tables with --small and --large rows of Globex (the
other tenant) and --own rows of Acme (the acting user's), made by generate_series: one pair
with a tenant column (``organization_id``) and one pair whose tenant comes through the
parent conversation (``tenant_sql``). Each isolation check (all five operations, Alice
against Bob) then runs in a fresh Python process, which reports its time and its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), side by side for

* ``new``: the probes as they are (the tenant condition in the user's statement, or a
  scratch table of addresses filled by the owner on the server), and
* ``old``: the probes before issue 8 (every address of the other tenant's rows fetched into
  Python with ``array_agg`` and sent back as one array; ``jsonb_agg`` of the visible rows for
  ``tenant_sql``), reproduced below as the reference.

The last rows of each table give the ratio large/small. The target: peak RSS at 1M rows
within ~1.2x of 10k for ``new``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

ALICE = "11111111-1111-1111-1111-111111111111"
BOB = "22222222-2222-2222-2222-222222222222"
ACME = "aaaaaaaa-0000-0000-0000-000000000001"
GLOBEX = "bbbbbbbb-0000-0000-0000-000000000002"
POLICY = "organization_id in (select private.get_user_organization_ids((select auth.uid())))"
PARENT = "(select c.organization_id from public.conversations c where c.id = conversation_id)"
KEYS = {
    # key label: (table prefix, the column definitions, the policies' condition, tenant_sql)
    "tenant column": ("bench_notes", "organization_id uuid not null references public.organizations (id)", POLICY, None),
    "tenant_sql": ("bench_replies", "conversation_id uuid not null references public.conversations (id)",
                   "conversation_id in (select c.id from public.conversations c)", PARENT),
}


# -- the reference: the probes before issue 8 --------------------------------------------------


def install_old_probes() -> None:
    """Put back the probes that fetched every address of the other tenant into Python."""
    from pytest_rlscheck import isolation
    from pytest_rlscheck.isolation import ADDRESS, Outcome, _Probe, updatable_column

    class OldProbe(_Probe):
        def other_rows(self) -> int:  # counted by each caller
            where, params = self._where_tenant(self.theirs)
            return self._owner(sql.SQL("select count(*) from {} t where {}").format(self.rel.ident, where), params)[0]

        def _ctids(self, tenant: str) -> list[str]:
            where, params = self._where_tenant(tenant)
            query = sql.SQL("select coalesce(array_agg(a), '{{}}') from (select {} as a from {} t where {}) t").format(
                ADDRESS, self.rel.ident, where
            )
            return list(self._owner(query, params)[0])

        def select(self) -> Outcome:
            if self.key.column:
                return super().select()
            refused = self._refused_by_privileges("select", "SELECT")
            if refused:
                return refused
            total = self.other_rows()
            visible = self._as_user(sql.SQL("select coalesce(jsonb_agg(to_jsonb(t)), '[]') from {} t").format(self.rel.ident))[0]
            where, params = self._where_tenant(self.theirs)
            seen = self._owner(
                sql.SQL("select count(*) from jsonb_populate_recordset(null::{}, %(rows)s::jsonb) t where {}").format(
                    self.rel.ident, where
                ),
                {**params, "rows": json.dumps(visible, default=str)},
            )[0]
            if seen:
                return Outcome("select", False, f"the user sees {seen} of the other tenant's {total} rows")
            return Outcome("select", True, f"none of the other tenant's {total} rows visible")

        def update(self) -> Outcome:
            refused = self._refused_by_privileges("update", "UPDATE")
            if refused:
                return refused
            target = self.key.column or updatable_column(self.rel)
            query = sql.SQL("update {rel} t set {col} = t.{col} where {address} = any(%(ctids)s::text[])").format(
                rel=self.rel.ident, col=sql.Identifier(target), address=ADDRESS
            )
            return self._judge("update", *self._attempt(query, {"ctids": self._ctids(self.theirs)}), what="their rows were updated")

        def delete(self) -> Outcome:
            refused = self._refused_by_privileges("delete", "DELETE")
            if refused:
                return refused
            query = sql.SQL("delete from {} t where {} = any(%(ctids)s::text[])").format(self.rel.ident, ADDRESS)
            return self._judge("delete", *self._attempt(query, {"ctids": self._ctids(self.theirs)}), what="their rows were deleted")

    isolation._Probe = OldProbe  # isolation_outcomes looks the class up by name


# -- one check, in a process of its own ----------------------------------------------------------


def child(dsn: str, table: str, tenant_sql: str | None, code: str) -> None:
    from pytest_rlscheck.client import Rls
    from pytest_rlscheck.isolation import isolation_outcomes, tenant_key

    if code == "old":
        install_old_probes()
    conn = psycopg.connect(dsn, autocommit=True)
    rls = Rls(conn, SimpleNamespace(dsn=dsn), transactional=True)  # type: ignore[arg-type]
    transaction = rls.test_transaction().begin()
    rel = rls.relation(table)
    key = tenant_key(rel, None, tenant_sql)
    alice, bob = rls.user(ALICE, tenant=ACME), rls.user(BOB, tenant=GLOBEX)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    outcomes, _ = isolation_outcomes(rls, rel, key, alice, bob)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    transaction.end()
    conn.close()
    print(json.dumps({"seconds": seconds, "start_kb": before, "peak_kb": peak,
                      "outcomes": {o.op: o.isolated for o in outcomes}}))


def run_child(dsn: str, table: str, tenant_sql: str | None, code: str) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", dsn, table, tenant_sql or "", code]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{code} check of {table} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the data --------------------------------------------------------------------------------


def build(conn: psycopg.Connection[Any], table: str, columns: str, condition: str, tenant_sql: str | None,
          theirs: int, own: int) -> None:
    t = sql.Identifier("public", table)
    conn.execute(sql.SQL(
        "create table {} (id bigint generated always as identity primary key, {}, flag boolean not null default false,"
        " body text not null default '')"
    ).format(t, sql.SQL(columns)))
    conn.execute(sql.SQL("alter table {} enable row level security").format(t))
    conn.execute(sql.SQL("grant select, insert, update, delete on {} to authenticated").format(t))
    for command in ("select", "insert", "update", "delete"):
        conn.execute(sql.SQL("create policy {} on {} for {} to authenticated {} ({})").format(
            sql.Identifier(f"{table}_{command}"), t, sql.SQL(command),
            sql.SQL("with check" if command == "insert" else "using"), sql.SQL(condition)))
    for tenant, n in ((ACME, own), (GLOBEX, theirs)):
        if tenant_sql is None:
            conn.execute(sql.SQL("insert into {} (organization_id, body) select %(org)s, 'n' || g"
                                 " from generate_series(1, %(n)s) g").format(t), {"org": tenant, "n": n})
        else:  # spread over the tenant's conversations
            conn.execute(sql.SQL(
                "insert into {} (conversation_id, body) select cs.ids[1 + mod(g, cardinality(cs.ids))], 'r' || g"
                " from (select array_agg(id order by id) ids from public.conversations where organization_id = %(org)s) cs,"
                " generate_series(1, %(n)s) g"
            ).format(t), {"org": tenant, "n": n})
    column = "organization_id" if tenant_sql is None else "conversation_id"
    conn.execute(sql.SQL("create index on {} ({})").format(t, sql.Identifier(column)))
    conn.execute(sql.SQL("vacuum analyze {}").format(t))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        dsn, table, tenant_sql, code = sys.argv[2:6]
        child(dsn, table, tenant_sql or None, code)
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--own", type=int, default=1_000)
    args = parser.parse_args()

    from pytest_rlscheck.config import load_settings
    from pytest_rlscheck.session import RlsSession

    settings = load_settings(rootdir=ROOT, invocation_dir=ROOT, pyproject=ROOT / "pyproject.toml")
    session = RlsSession(settings)
    results: list[tuple[str, int, str, dict[str, Any]]] = []
    try:
        database = session.fresh_database()
        started = time.perf_counter()
        with database.connect(autocommit=True) as conn:
            for label, (prefix, columns, condition, tenant_sql) in KEYS.items():
                for n in (args.small, args.large):
                    build(conn, f"{prefix}_{n}", columns, condition, tenant_sql, n, args.own)
        print(f"data: {2 * (args.small + args.large + 2 * args.own):,} rows in 4 tables, "
              f"built in {time.perf_counter() - started:.1f} s (not measured below)")
        for label, (prefix, _, _, tenant_sql) in KEYS.items():
            for n in (args.small, args.large):
                for code in ("new", "old"):
                    results.append((label, n, code, run_child(database.dsn, f"{prefix}_{n}", tenant_sql, code)))
    finally:
        session.close()

    print(f"\nIsolation check, all five operations, acting as Alice (tenant Acme, {args.own:,} own rows) against")
    print("Bob's tenant; each run in a fresh process. RSS: that process's peak (ru_maxrss); 'check' = peak")
    print("minus the RSS before the check started (imports and connection).")
    print(f"{'key':<14} {'rows of theirs':>14} {'code':<5} {'seconds':>8} {'peak RSS MB':>12} {'check MB':>9}  outcomes")
    for label, n, code, r in results:
        ok = "all isolated" if all(r["outcomes"].values()) else json.dumps(r["outcomes"])
        print(f"{label:<14} {n:>14,} {code:<5} {r['seconds']:>8.2f} {r['peak_kb'] / 1024:>12.1f} "
              f"{(r['peak_kb'] - r['start_kb']) / 1024:>9.1f}  {ok}")
    print(f"\nRatio {args.large:,} / {args.small:,} rows")
    print(f"{'key':<14} {'code':<5} {'seconds':>8} {'peak RSS':>9}")
    for label in KEYS:
        for code in ("new", "old"):
            small, large = (next(r for lb, n, c, r in results if (lb, n, c) == (label, size, code))
                            for size in (args.small, args.large))
            print(f"{label:<14} {code:<5} {large['seconds'] / small['seconds']:>7.1f}x "
                  f"{large['peak_kb'] / small['peak_kb']:>8.2f}x")


if __name__ == "__main__":
    main()
