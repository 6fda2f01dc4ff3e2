"""Where a finding points: the statement that last (re)created or altered its object, or the
policy it names (:mod:`pytest_rlscheck.locate`). The files are real migration files; the
last test runs the sweep on a project made of them, against PostgreSQL, and reads the
report."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import example_project
from pytest_rlscheck.locate import Sites, creation_sites
from pytest_rlscheck.migrations import load_files

FIRST = """\
create table if not exists public.jot (id bigint primary key, body text);
create policy "Jot readers" on public.jot for select to authenticated using (true);
create function public.jotter() returns int language sql as $$ select 1 $$;
"""
SECOND = """\
-- the table again, from scratch
drop table if exists public.jot;
create table if not exists public.jot (
  id bigint primary key,
  body text
);
create policy "Jot readers" on public.jot for select to authenticated using (true);
drop policy "Jot readers" on public.jot;
create policy "Jot readers" on public.jot
  for select to authenticated using (true);
"""
THIRD = """\
select 1;
alter table public.jot add column note text;
create table if not exists public.jot (id bigint primary key);
do $$ begin execute 'alter table public.jot enable row level security'; end $$;
create or replace function public.later() returns void language plpgsql as $$
begin
  alter table public.jot disable row level security;
  create table public.jot (x int);
end $$;
"""


def _write(root: Path, *texts: str) -> list[Path]:
    paths = []
    for number, text in enumerate(texts, 1):
        path = root / f"2024010100000{number}_step.sql"
        path.write_text(textwrap.dedent(text))
        paths.append(path)
    return paths


def _sites(tmp_path: Path, *texts: str) -> Sites:
    return Sites.read(load_files(_write(tmp_path, *texts), "migration", tmp_path))


def test_a_table_created_if_not_exists_recreated_then_altered_points_at_the_alter(tmp_path: Path) -> None:
    sites = _sites(tmp_path, FIRST, SECOND, THIRD)
    # not file 1's CREATE IF NOT EXISTS, nor file 2's re-creation, nor file 3's CREATE IF NOT
    # EXISTS after it exists; nor what a DO block or a function body runs
    assert sites.of("public.jot") == ("20240101000003_step.sql", 2)
    assert sites.of("public.jotter") == ("20240101000001_step.sql", 3)
    assert sites.of("public.later") == ("20240101000003_step.sql", 5)


def test_a_policy_dropped_and_recreated_points_at_the_recreation(tmp_path: Path) -> None:
    sites = _sites(tmp_path, FIRST, SECOND, THIRD)
    assert sites.of("public.jot", "Jot readers") == ("20240101000002_step.sql", 9)
    # a policy the migrations do not know: the table's own site
    assert sites.of("public.jot", "other") == ("20240101000003_step.sql", 2)
    assert sites.latest("public.jot", ["other", "Jot readers"]) == ("20240101000002_step.sql", 9)


def test_a_table_created_if_not_exists_after_it_exists_keeps_its_site(tmp_path: Path) -> None:
    sites = _sites(tmp_path, "create table public.t (a int);\ncreate table if not exists t (a int);\n")
    assert sites.of("public.t") == ("20240101000001_step.sql", 1)


def test_renames_schema_moves_case_and_rls_switches(tmp_path: Path) -> None:
    sites = _sites(tmp_path, """\
        create table "Mixed" (a int);
        create table Folded (a int);
        create schema private;
        create table public.old (a int);
        create policy own on public.old using (true);
        alter table public.old rename to new;
        alter table if exists only public.new enable row level security;
        alter policy own on public.new rename to mine;
        create view private.v as select 1 as one;
        alter view private.v set schema public;
        create function private.f(a int) returns int language sql as $$ select a $$;
        create function private.f(a text) returns int language sql as $$ select 1 $$;
        alter function private.f(text) rename to g;
        drop function private.f(int);
        create materialized view private.m as select 1 as one;
        create table "Q"."W x" (a int);
        drop schema private cascade;
    """)
    assert sites.of("public.Mixed") == ("20240101000001_step.sql", 1)
    assert sites.of("public.folded") == ("20240101000001_step.sql", 2)
    assert sites.of("public.old") is None
    assert sites.of("public.new") == ("20240101000001_step.sql", 7)
    assert sites.of("public.new", "mine") == ("20240101000001_step.sql", 8)
    assert ("public.new", "own") not in sites.policies
    assert sites.of("public.v") == ("20240101000001_step.sql", 10)
    assert sites.of("private.g") is None and sites.of("private.m") is None  # dropped with the schema
    assert sites.of("Q.W x") == ("20240101000001_step.sql", 16)
    assert creation_sites(load_files(sorted(tmp_path.glob("*.sql")), "migration", tmp_path)) == sites.objects


def test_the_sites_are_those_postgresql_ends_up_with(rls, tmp_path: Path) -> None:
    """The three files run (in a transaction rolled back): the table exists, with the column
    file 3 added, and the policy of file 2."""
    for text in (FIRST, SECOND, THIRD):
        rls.execute(text)
    columns = [name for (name,) in rls.fetchall(
        "select attname from pg_attribute where attrelid = 'public.jot'::regclass and attnum > 0 order by attnum")]
    assert columns == ["id", "body", "note"]
    assert [p.name for p in rls.relation("public.jot").policies] == ["Jot readers"]


REPORTED = {
    "20250101000001_jot.sql": """\
        create table if not exists public.jot (id bigint primary key, body text);
        grant select on public.jot to anon, authenticated;
        create table public.board (id bigint primary key, body text);
        alter table public.board enable row level security;
        grant select on public.board to anon, authenticated;
        create policy "Board readers" on public.board for select to anon, authenticated using (true);
    """,
    "20250101000002_jot.sql": """\
        drop table public.jot;
        create table if not exists public.jot (id bigint primary key, body text);
        grant select on public.jot to anon, authenticated;
        drop policy "Board readers" on public.board;

        create policy "Board readers" on public.board
          for select to anon, authenticated using (true);
    """,
    "20250101000003_jot.sql": """\
        create table if not exists public.jot (id bigint primary key);
        -- a note
        alter table public.jot add column note text;
        alter table public.board add column note text;
    """,
}


def test_the_sweep_reports_the_last_site_and_the_policy_line(pytester: pytest.Pytester) -> None:
    example_project(pytester)
    for name, text in REPORTED.items():
        (pytester.path / "supabase" / "migrations" / name).write_text(textwrap.dedent(text))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rlscheck", "-m", "rlscheck",
                                           "--rlscheck-report=out.json", timeout=300)
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    report = json.loads((pytester.path / "out.json").read_text())
    found = {(f["rule"], f["object"]): (f["file"], f["line"]) for f in _findings(report)}
    third = ("supabase/migrations/20250101000003_jot.sql", 3)
    assert found[("rls-disabled", "public.jot")] == third
    assert found[("policy-always-true", "public.board")] == ("supabase/migrations/20250101000002_jot.sql", 6)
    # a finding about the board but not about its policy: the table's last ALTER
    assert {site for (rule, obj), site in found.items() if obj == "public.board" and rule != "policy-always-true"} <= {
        ("supabase/migrations/20250101000003_jot.sql", 4)}


def _findings(report: dict) -> list[dict]:
    return report["findings"]
