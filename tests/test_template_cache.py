"""The template cache: a migrated template reused between runs, and never a stale one.

Each test runs pytest in a subprocess with a cache directory of its own. What a run got
is read from the run itself: a test in the project writes ``environment()["template"]``
(where the template came from) and what the database holds to a file."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import write_project
from pytest_rlscheck.template_cache import Entry, TemplateCache

SCHEMA = {
    "001_notes.sql": """
        create table public.notes (id int primary key, body text);
        comment on table public.notes is 'version one';
    """,
}
SEED = "insert into public.notes values (1, 'a'), (2, 'b');\n"
#: The project's test: where the template came from, and what the database says.
PROBE = """
import json, os

def test_probe(rls, rlscheck_session):
    template = rlscheck_session.environment()["template"]
    comment = rls.scalar("select obj_description('public.notes'::regclass)")
    rows = rls.scalar("select count(*) from public.notes")
    with open(os.environ["PROBE_OUT"], "a") as f:
        f.write(json.dumps({"source": template["source"], "key": template["key"], "comment": comment,
                            "rows": rows}) + "\\n")
"""


@pytest.fixture(scope="module")
def shared_cache_dir() -> Iterator[Path]:
    """A cache directory of this module's own, where the server's account can reach it
    (pytest's tmp_path is not: it is under a directory of mode 0700). Its initdb'd cluster
    is made once; each test starts with no template in it."""
    cache = Path(tempfile.mkdtemp(prefix="rlscheck-cache-test-", dir="/tmp"))
    os.chmod(cache, 0o755)
    yield cache
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture
def cache_dir(shared_cache_dir: Path) -> Path:
    shutil.rmtree(shared_cache_dir / "templates", ignore_errors=True)
    return shared_cache_dir


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("RLSCHECK_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("RLSCHECK_TEMPLATE_CACHE", "1")
    monkeypatch.setenv("PROBE_OUT", str(tmp_path / "probe.jsonl"))
    write_project(pytester, SCHEMA, SEED)
    pytester.makepyfile(PROBE)
    return pytester


def _args() -> list[str]:
    return ["-p", "no:cacheprovider", "--rlscheck-migrations", "migrations", "--rlscheck-seed", "seed.sql"]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    result = pytester.runpytest_subprocess(*_args(), *args, timeout=240)
    assert result.ret == 0, result.stdout.str()
    return result


def _probes(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "probe.jsonl").read_text().splitlines()]


def _cache(tmp_path: Path) -> TemplateCache:
    return TemplateCache(Path(os.environ["RLSCHECK_CACHE_DIR"]) / "templates", None)


def test_a_second_run_uses_the_cached_template(project: pytest.Pytester, tmp_path: Path) -> None:
    first = _run(project)
    first.stdout.fnmatch_lines(["rlscheck: template to be built (key *, not in the cache yet)"])
    second = _run(project)
    second.stdout.fnmatch_lines(["rlscheck: cached template (key *, built *)"])
    built, cached = _probes(tmp_path)
    assert (built["source"], cached["source"]) == ("built", "cached")
    assert built["key"] == cached["key"]
    assert cached["comment"] == "version one" and cached["rows"] == 2
    [entry] = _cache(tmp_path).entries()
    account = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert entry.data.stat().st_uid == account  # the server's account owns the cluster
    assert (entry.data / "PG_VERSION").is_file() and not (entry.data / "postmaster.pid").exists()


def test_one_byte_of_one_migration_misses(project: pytest.Pytester, tmp_path: Path) -> None:
    _run(project)
    migration = project.path / "migrations" / "001_notes.sql"
    migration.write_text(migration.read_text().replace("version one", "version One"))
    _run(project)
    first, second = _probes(tmp_path)
    assert second["source"] == "built" and second["key"] != first["key"]
    assert second["comment"] == "version One"  # the new migration's database, not the cached one
    assert len(_cache(tmp_path).entries()) == 2


def test_one_byte_of_the_seed_misses(project: pytest.Pytester, tmp_path: Path) -> None:
    _run(project)
    (project.path / "seed.sql").write_text(SEED.replace("(2, 'b')", "(2, 'c'), (3, 'c')"))
    _run(project)
    first, second = _probes(tmp_path)
    assert second["source"] == "built" and (first["rows"], second["rows"]) == (2, 3)


def test_a_server_setting_misses(project: pytest.Pytester, tmp_path: Path) -> None:
    _run(project)
    _run(project, "--rlscheck-pg-setting", "work_mem=8MB")
    first, second = _probes(tmp_path)
    assert second["source"] == "built" and second["key"] != first["key"]


def test_two_runs_at_once_share_one_build(project: pytest.Pytester, tmp_path: Path) -> None:
    """Started together, one run builds and the other waits on the key's lock, then copies
    the entry (or finds it there already): whatever the timing, exactly one build."""
    (project.path / "migrations" / "002_slow.sql").write_text("select pg_sleep(1);\n")
    command = [sys.executable, "-m", "pytest", *_args()]
    runs = [subprocess.Popen(command, cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    sources = sorted(probe["source"] for probe in _probes(tmp_path))
    assert sources == ["built", "cached"], outputs
    assert len(_cache(tmp_path).entries()) == 1


def test_a_damaged_entry_is_rebuilt_not_used(project: pytest.Pytester, tmp_path: Path) -> None:
    _run(project)
    [entry] = _cache(tmp_path).entries()
    victim = max((p for p in (entry.data / "base").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    with open(victim, "r+b") as f:
        f.truncate(victim.stat().st_size // 2)
    _run(project)
    first, second = _probes(tmp_path)
    assert second["source"] == "built" and second["rows"] == 2
    [rebuilt] = _cache(tmp_path).entries()
    assert rebuilt.key == entry.key and rebuilt.built_at > entry.built_at


def test_a_half_written_entry_is_never_used(tmp_path: Path) -> None:
    """A killed builder leaves its staging directory, which has no entry's name."""
    cache = TemplateCache(tmp_path, None)
    key = "ab" * 32
    staging = tmp_path / f".t-{key[:12]}-x1"
    (staging / "data").mkdir(parents=True)
    (staging / "entry.json").write_text("{}")
    assert cache.lookup(key) is None and cache.entries() == []
    os.utime(staging, (0, 0))  # long ago
    cache.prune()
    assert not staging.exists()


def test_no_cache_neither_uses_nor_stores(project: pytest.Pytester, tmp_path: Path) -> None:
    _run(project)
    result = _run(project, "--rlscheck-no-cache")
    result.stdout.fnmatch_lines(["rlscheck: template built (the template cache is off: --rlscheck-no-cache)"])
    assert [p["source"] for p in _probes(tmp_path)] == ["built", "off"]
    assert len(_cache(tmp_path).entries()) == 1


def test_cache_clear_empties_it_first(project: pytest.Pytester, tmp_path: Path) -> None:
    _run(project)
    result = _run(project, "--rlscheck-cache-clear")
    result.stdout.fnmatch_lines(["rlscheck: template cache cleared (1 entry removed)"])
    assert [p["source"] for p in _probes(tmp_path)] == ["built", "built"]


def _fake_entry(cache: TemplateCache, key: str, size: int, used: float) -> Entry:
    def fill(target: Path) -> None:
        target.mkdir()
        (target / "PG_VERSION").write_text("15\n")
        (target / "blob").write_bytes(b"x" * size)

    entry = cache.store(key, fill, template="t", parts=[], owner=None, platform_dump=False, notes=[], password="p")
    os.utime(entry.path, (used, used))
    return entry


def test_the_least_recently_used_entries_go_first(tmp_path: Path) -> None:
    cache = TemplateCache(tmp_path, None)
    mib = 1024 * 1024
    for n, used in enumerate((300, 100, 200)):
        _fake_entry(cache, f"{n:064x}", mib, used)
    removed = cache.prune(limit=2 * mib + mib // 2)
    assert removed == [f"{1:064x}"]  # the one used longest ago
    assert sorted(e.key for e in cache.entries()) == [f"{0:064x}", f"{2:064x}"]
    with cache.locked(f"{2:064x}"):  # in use by another run: it stays
        assert cache.prune(limit=0) == [f"{0:064x}"]
    assert [e.key for e in cache.entries()] == [f"{2:064x}"]


def test_rows_written_with_the_clock_age_out(project: pytest.Pytester, tmp_path: Path, monkeypatch) -> None:
    """A seeded ``now()`` is as old as the build: such an entry is used for a while only."""
    (project.path / "seed.sql").write_text("insert into public.notes values (1, now()::text), (2, 'b');\n")
    _run(project)
    [entry] = _cache(tmp_path).entries()
    assert entry.clock
    _run(project).stdout.fnmatch_lines(["rlscheck: cached template (key *; its rows were written while the sources "
                                        "read the clock: rebuilt an hour after)"])
    monkeypatch.setenv("RLSCHECK_CACHE_CLOCK_TTL", "0")
    _run(project)
    assert [p["source"] for p in _probes(tmp_path)] == ["built", "cached", "built"]


def test_no_clock_no_ageing(project: pytest.Pytester, tmp_path: Path, monkeypatch) -> None:
    _run(project)
    [entry] = _cache(tmp_path).entries()
    assert not entry.clock  # the sources name no clock: the rows are the same whenever built
    monkeypatch.setenv("RLSCHECK_CACHE_CLOCK_TTL", "0")
    _run(project)
    assert [p["source"] for p in _probes(tmp_path)] == ["built", "cached"]


def test_sources_that_read_server_files_are_not_cached(project: pytest.Pytester, tmp_path: Path) -> None:
    (project.path / "migrations" / "002_load.sql").write_text(
        "do $$ begin if false then copy public.notes from '/nonexistent.csv' with (format csv); end if; end $$;\n"
    )
    result = _run(project)
    result.stdout.fnmatch_lines(["rlscheck: template built (the template cache is off: the sources have the server "
                                 "read a file *"])
    assert [p["source"] for p in _probes(tmp_path)] == ["off"]
    assert _cache(tmp_path).entries() == []


def test_xdist_workers_use_the_controllers_cached_template(project: pytest.Pytester, tmp_path: Path) -> None:
    """The controller takes the template from the cache and hands it to each worker."""
    _run(project)
    project.makepyfile(test_more=PROBE.replace("def test_probe", "def test_probe_again"))
    _run(project, "-n", "2")
    sources = [p["source"] for p in _probes(tmp_path)]
    assert sources == ["built", "cached", "cached"]
    assert len({p["key"] for p in _probes(tmp_path)}) == 1
