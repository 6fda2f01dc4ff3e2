"""Private copies of a server installation with stand-in extensions, and the choice of a
server by the extensions the migrations create."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_rlscheck.binaries import PgBinaries, find_pg_binaries
from pytest_rlscheck.extensions import StandIn, choose_server, requested_extensions, stand_ins
from pytest_rlscheck.installation import private_installation
from pytest_rlscheck.reaper import Reaper
from pytest_rlscheck.server import LocalServer

PROBE_CONTROL = """\
comment = 'a test stand-in'
default_version = '1.0'
relocatable = false
# rlscheck: nothing real happens
"""
PROBE_SQL = """\
create function @extschema@.probe_answer() returns int language sql as 'select 42';
"""


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache the server's account can traverse (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="rlscheck-cache-test-"))
    os.chmod(directory, 0o755)
    monkeypatch.setenv("RLSCHECK_CACHE_DIR", str(directory))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _stand_in(tmp_path: Path, name: str, control: str = PROBE_CONTROL, script: str = PROBE_SQL) -> StandIn:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / f"{name}.control").write_text(control)
    (tmp_path / f"{name}--1.0.sql").write_text(script)
    return StandIn(name, "1.0", "nothing real happens", (), (tmp_path / f"{name}.control", tmp_path / f"{name}--1.0.sql"))


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


def test_a_stand_in_is_a_real_extension_of_the_private_copy(tmp_path: Path, cache: Path) -> None:
    binaries = find_pg_binaries(None)
    original = _digest(binaries.sharedir / "extension")
    probe = _stand_in(tmp_path / "standins", "rlscheck_probe")
    reaper = Reaper()
    server = LocalServer(binaries, reaper, stand_ins=[probe])
    try:
        assert str(server.binaries.bindir).startswith(str(cache))
        with server.admin() as conn:
            available = conn.execute(
                "select default_version, comment from pg_available_extensions where name = 'rlscheck_probe'"
            ).fetchall()
            assert available == [("1.0", "a test stand-in")]
            conn.execute("create schema probe")
            conn.execute("create extension rlscheck_probe with schema probe")
            assert conn.execute("select probe.probe_answer()").fetchone() == (42,)
            # the real ones are all still there
            names = {row[0] for row in conn.execute("select name from pg_available_extensions")}
            assert names == binaries.extensions() | {"rlscheck_probe"}
            conn.execute("create extension pg_trgm")  # a real one, its library found through the copy
    finally:
        server.stop()
        reaper.close()
    assert _digest(binaries.sharedir / "extension") == original  # nothing written into the original
    assert not (binaries.sharedir / "extension" / "rlscheck_probe.control").exists()


def test_a_stand_in_named_like_an_installed_extension_never_writes_through_a_link(tmp_path: Path, cache: Path) -> None:
    binaries = find_pg_binaries(None)
    real = binaries.sharedir / "extension" / "tcn.control"
    before = real.read_bytes()
    shadow = _stand_in(tmp_path / "standins", "tcn", control=PROBE_CONTROL.replace("1.0", "1.0"))
    for whole in (False, True):  # links to the original, or hard links of every file
        copy = private_installation(binaries, [shadow], whole=whole)
        ours = copy.sharedir / "extension" / "tcn.control"
        assert ours.read_text() == PROBE_CONTROL
        assert not ours.is_symlink()
        assert real.read_bytes() == before
    assert copy.extensions() >= binaries.extensions()


def test_a_copy_is_built_once_and_reused(tmp_path: Path, cache: Path) -> None:
    binaries = find_pg_binaries(None)
    probe = _stand_in(tmp_path / "standins", "rlscheck_probe")
    first = private_installation(binaries, [probe], whole=False)
    marker = first.bindir / "postgres"
    inode = marker.stat().st_ino
    again = private_installation(binaries, [probe], whole=False)
    assert again.bindir == first.bindir and (again.bindir / "postgres").stat().st_ino == inode
    (tmp_path / "standins" / "rlscheck_probe--1.0.sql").write_text(PROBE_SQL + "-- changed\n")
    changed = private_installation(binaries, [probe], whole=False)
    assert changed.bindir != first.bindir  # a changed stand-in is a new copy
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_a_cache_another_account_may_write_is_refused(tmp_path: Path, cache: Path) -> None:
    from pytest_rlscheck.errors import ServerError

    os.chmod(cache, 0o777)
    with pytest.raises(ServerError, match="writable by others"):
        private_installation(find_pg_binaries(None), [], whole=True)


# -- which extensions the sources create --------------------------------------------------


def test_requested_extensions_are_read_from_code_not_comments() -> None:
    text = """\
-- create extension postgis;
/* create extension pg_hashids; */
create extension if not exists "uuid-ossp" with schema extensions;
CREATE EXTENSION vector
  with schema extensions;
create function f() returns void language plpgsql as $$
begin execute 'create extension if not exists pg_net'; end $$;
select 'create extension';
"""
    found = requested_extensions([("supabase/migrations/1_a.sql", text)])
    assert found == {
        "uuid-ossp": "supabase/migrations/1_a.sql:3",
        "vector": "supabase/migrations/1_a.sql:4",
        "pg_net": "supabase/migrations/1_a.sql:7",
    }


# -- choosing a server ----------------------------------------------------------------------


def _installation(root: Path, name: str, version: str, extensions: list[str]) -> PgBinaries:
    bindir = root / name / "bin"
    bindir.mkdir(parents=True)
    share = root / name / "share" / "extension"
    share.mkdir(parents=True)
    for ext in extensions:
        (share / f"{ext}.control").write_text("default_version = '1'\n")
    return PgBinaries(bindir=bindir, version=version, source=name)


def test_the_server_with_the_wanted_extensions_is_chosen_and_the_rest_stood_in(tmp_path: Path) -> None:
    system = _installation(tmp_path, "system", "15.1", ["pgcrypto", "uuid-ossp", "pg_cron"])
    wheel = _installation(tmp_path, "wheel", "18.1", ["vector"])
    net = StandIn("pg_net", "0.1", "no HTTP requests are sent", (), ())
    pgcrypto = StandIn("pgcrypto", "1.3", "not OpenSSL", (), ())
    cron = StandIn("pg_cron", "1.6", "jobs never run", (), ())
    shipped = {s.name: s for s in (net, pgcrypto, cron)}
    requested = {"vector": "m.sql:1", "pg_net": "m.sql:2", "pg_cron": "m.sql:3"}
    plan = choose_server(
        [*requested, "pgcrypto", "uuid-ossp"], [system, wheel], requested=requested, available=shipped
    )
    assert plan.binaries == wheel  # vector cannot be stood in; pgcrypto can
    assert [s.name for s in plan.stood_in] == ["pg_cron", "pg_net", "pgcrypto"]
    assert plan.missing == ("uuid-ossp",)
    assert "vector" in plan.reason
    assert any("lacks vector" in line for line in plan.looked_at)
    header = plan.header_lines()
    assert "simulated: pg_net — no HTTP requests are sent" in header

    # nothing exotic wanted: the first one found, nothing stood in but what is always
    plain = choose_server(["pgcrypto"], [system, wheel], requested={}, available=shipped)
    assert plain.binaries == system and plain.stood_in == () and plain.reason == ""

    # stand_ins = false: only real extensions, the rest reported missing
    off = choose_server(list(requested), [system, wheel], requested=requested, use_stand_ins=False, available=shipped)
    assert off.stood_in == () and set(off.missing) == {"pg_net", "pg_cron"} | ({"vector"} - off.binaries.extensions())


def test_major_version_breaks_ties_only(tmp_path: Path) -> None:
    a = _installation(tmp_path, "a", "15.1", ["pgcrypto"])
    b = _installation(tmp_path, "b", "17.1", ["pgcrypto"])
    assert choose_server(["pgcrypto"], [a, b], requested={}, major=17, available={}).binaries == b
    c = _installation(tmp_path, "c", "17.2", [])
    assert choose_server(["pgcrypto"], [a, c], requested={}, major=17, available={}).binaries == a


def test_the_shipped_stand_ins_are_complete_extensions() -> None:
    shipped = stand_ins()
    assert shipped, "the package ships no stand-in"
    for stand_in in shipped.values():
        names = {p.name for p in stand_in.files}
        assert f"{stand_in.name}.control" in names
        assert f"{stand_in.name}--{stand_in.version}.sql" in names, stand_in
        assert stand_in.note and "stand-in written from" not in stand_in.note, f"{stand_in.name}: no '# rlscheck:' line"


# -- as a user meets it --------------------------------------------------------------------


def _project(pytester: pytest.Pytester, migration: str, config: str = "") -> None:
    (pytester.path / "supabase" / "migrations").mkdir(parents=True)
    (pytester.path / "supabase" / "migrations" / "20240101000000_init.sql").write_text(migration)
    if config:
        pytester.makepyprojecttoml("[tool.rlscheck]\n" + config)
    pytester.makepyfile("def test_loaded(rls):\n    rls.scalar('select 1')\n")


def test_an_extension_no_server_has_names_every_server_looked_at(pytester: pytest.Pytester) -> None:
    _project(pytester, "create table t (id int);\ncreate extension if not exists rlscheck_nowhere;\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "supabase/migrations/20240101000000_init.sql:2:1: migration failed" in out
    assert "no server here has 'rlscheck_nowhere', and rlscheck has no stand-in for it. Servers looked at:" in out
    assert f"- {find_pg_binaries(os.environ.get('RLSCHECK_PG_BIN')).describe()}: lacks rlscheck_nowhere" in out
    assert "To get it: install the rlscheck_nowhere extension for PostgreSQL" in out
    assert "not available on any server here, and no stand-in: rlscheck_nowhere (supabase/migrations/" in out
    result.assert_outcomes(errors=1)


def test_stand_ins_off_leaves_a_platform_extension_missing_and_says_so(pytester: pytest.Pytester) -> None:
    _project(pytester, "create extension if not exists pg_net with schema extensions;\n", "stand_ins = false\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "no server here has 'pg_net', and its stand-in is off (stand_ins = false)" in out
    assert "simulated:" not in out
    result.assert_outcomes(errors=1)


def test_a_stand_in_is_named_in_the_header_and_the_summary(pytester: pytest.Pytester) -> None:
    _project(pytester, "create extension if not exists pg_net with schema extensions;\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    out = result.stdout.str()
    header, _, summary = out.partition("collected 1 item")
    assert "rlscheck: simulated: pg_net — " in header
    assert "rlscheck: stand-ins in use" in summary and "rlscheck: simulated: pg_net — " in summary
    result.assert_outcomes(passed=1)


def test_stand_ins_must_be_a_boolean(pytester: pytest.Pytester) -> None:
    _project(pytester, "select 1;\n", 'stand_ins = "no"\n')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert "[tool.rlscheck] stand_ins must be true or false, got 'no'" in result.stderr.str()


# -- the initdb'd cluster, made once per installation ------------------------------------


def test_runs_copy_one_cached_cluster_and_each_gets_its_own_password(cache: Path) -> None:
    import psycopg

    binaries = find_pg_binaries(os.environ.get("RLSCHECK_PG_BIN"))
    reaper = Reaper()
    first = LocalServer(binaries, reaper)
    second = LocalServer(binaries, reaper)
    try:
        clusters = [p for p in cache.iterdir() if p.name.startswith("cluster-") and p.is_dir()]
        assert len(clusters) == 1  # initdb ran once
        info = clusters[0].stat()
        assert info.st_mode & 0o077 == 0  # the server account's alone
        password = Path(f"{clusters[0]}.password").stat()
        assert password.st_mode & 0o077 == 0  # as private as the cluster
        if first.run_as:
            assert info.st_uid == first.run_as[0]
        for server, other in ((first, second), (second, first)):
            with server.admin() as conn:
                assert conn.execute("select 1").fetchone() == (1,)
            stolen = {**server._base, "password": other._base["password"], "dbname": "postgres"}
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(**stolen, connect_timeout=10).close()
    finally:
        first.stop()
        second.stop()
        reaper.close()


def test_the_cluster_cache_can_be_turned_off(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLSCHECK_CLUSTER_CACHE", "0")
    reaper = Reaper()
    server = LocalServer(find_pg_binaries(os.environ.get("RLSCHECK_PG_BIN")), reaper)
    try:
        with server.admin() as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        server.stop()
        reaper.close()
    assert not [p for p in cache.iterdir() if p.name.startswith("cluster-")]


def test_copies_no_run_used_for_two_weeks_are_pruned_when_a_new_one_is_made(tmp_path: Path, cache: Path) -> None:
    import time

    old = cache / "pg-15.1-000000000000"
    recent = cache / "pg-15.1-111111111111"
    other = cache / "notes"  # not ours
    for path in (old, recent, other):
        path.mkdir()
    month_ago = time.time() - 30 * 86400
    for path in (old, other):
        os.utime(path, (month_ago, month_ago))
    private_installation(find_pg_binaries(None), [_stand_in(tmp_path / "standins", "rlscheck_probe")], whole=False)
    assert not old.exists() and recent.exists() and other.exists()


def test_the_major_version_asked_for_wins_over_stand_ins_the_shim_would_need(tmp_path: Path) -> None:
    system = _installation(tmp_path, "system", "15.1", ["pgcrypto", "uuid-ossp"])
    wheel = _installation(tmp_path, "wheel", "17.1", ["pgcrypto"])
    shipped = {"uuid-ossp": StandIn("uuid-ossp", "1.1", "made-up node", (), ())}
    plan = choose_server(["pgcrypto", "uuid-ossp"], [system, wheel], requested={}, major=17, available=shipped)
    assert plan.binaries == wheel and [s.name for s in plan.stood_in] == ["uuid-ossp"]
    # a major that lacks what the sources create (and no stand-in) loses, and the header says why
    plan = choose_server(["vector"], [_installation(tmp_path, "pg18", "18.1", ["vector"]), wheel],
                         requested={"vector": "m.sql:1"}, major=17, available={})
    assert plan.binaries.major == 18
    assert "which [db] major_version asks for, because that one lacks vector (no stand-in)" in plan.reason


def test_a_supabase_only_extension_is_not_sent_to_apt() -> None:
    from pytest_rlscheck.install_hints import install_hint

    hint = install_hint("wrappers", find_pg_binaries(None).major)
    assert "Supabase's own PostgreSQL image" in hint and "apt-get" not in hint
