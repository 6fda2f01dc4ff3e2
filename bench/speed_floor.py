"""Cold start against the floor (issue 14): ``pytest --rlscheck -m rlscheck`` as a whole
process, next to a shell pipeline that does the same build with nothing of the plugin.

    python bench/speed_floor.py [--runs 5] [--profile] [--only example|generated]

The floor (:func:`shell_floor`), one ``bash -c`` script timed from here: initdb as the
server's account (``--no-sync``, trust over a private socket), ``pg_ctl start -w`` with the
plugin's TEST_SETTINGS, ``create database``, the Supabase shim exactly as the plugin would
apply it to this project (written to a file beforehand, from the plugin's public functions),
every migration and the seed in one ``psql -X -q -v ON_ERROR_STOP=1 -f … -f …`` acting as
``postgres`` (as the plugin's build does), ``pg_ctl stop -m immediate``, ``rm -rf``.

Cold (``pytest``): a fresh RLSCHECK_CACHE_DIR per run holding only what a developer has
after a first run ever (the per-installation entries: the initdb'd cluster, private
installation copies); "empty cache" is a fresh, empty one (initdb and the cluster's cache
entry written during the run). Medians, floor and runs alternating.

Two projects: the worked example (a temporary directory with a copy of sql/ and the
repository's [tool.rlscheck] tables, none of its tests) and a generated Supabase project of
100 migrations and 200 tables (:mod:`project_generator`). ``--profile``: one cold run of each
under cProfile, and a wall-time breakdown (imports, server start, template build, sweep,
teardown) from a small timing plugin (:mod:`floor_timing`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(BENCH))

from project_generator import generate_project  # noqa: E402
from pytest_rlscheck.config import load_settings  # noqa: E402
from pytest_rlscheck.owner import owner_role_sql  # noqa: E402
from pytest_rlscheck.reaper import Reaper  # noqa: E402
from pytest_rlscheck.server import SUPERUSER, TEST_SETTINGS, WAL_SEGMENT_MB, server_account, temp_parent  # noqa: E402
from pytest_rlscheck.template import OWNER_ROLE, SUPABASE_SEARCH_PATH, TemplateBuild  # noqa: E402

__all__ = ["generate_project", "main", "shell_floor", "shim_script"]

PYTEST = [sys.executable, "-m", "pytest", "--rlscheck", "-m", "rlscheck", "-q", "-p", "no:cacheprovider"]
SERVER_ACCOUNT = "postgres"
FLOOR_DB = "floor"
#: The per-installation entries of the cache (server.py's cluster, installation.py's
#: copies): what a developer's cache holds after their first run ever. Anything else (a
#: template cache) is left out of a "cold" run.
INSTALLATION_ENTRIES = ("cluster-", "pg-")
#: pytest-postgresql's locale, which the plugin's initdb runs with.
LOCALE = "C.UTF-8"
#: The item the sweep reports a failed server start or build as (then no sweep ran).
BUILD_FAILED = "rlscheck::migrations::"

#: The floor. $1: the PostgreSQL bin directory; $2: the shim file ('' for none); $3: the
#: PGOPTIONS the sources run with; the rest: the migration and seed files, in order.
FLOOR_SCRIPT = r"""
set -euo pipefail
B=$1; SHIM=$2; SOURCE_OPTIONS=$3; shift 3
D=$(mktemp -d {parent}/rlscheck-floor-XXXXXX)
trap 'runuser -u {account} -- "$B/pg_ctl" stop -D "$D/data" -m immediate -w -s >/dev/null 2>&1; rm -rf "$D"' EXIT
chown {account}: "$D"
runuser -u {account} -- env LC_ALL={locale} LANG={locale} "$B/initdb" -D "$D/data" -U {superuser} -A trust -N --wal-segsize={wal_mb} >/dev/null
runuser -u {account} -- "$B/pg_ctl" start -D "$D/data" -w -s -l "$D/log" \
  -o "-F -c listen_addresses='' -c unix_socket_directories='$D' -c unix_socket_permissions=0700 {settings}"
export PGHOST=$D PGUSER={superuser}
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'create database {db}'
if [ -n "$SHIM" ]; then
  PGOPTIONS='-c search_path={search_path}' psql -X -q -v ON_ERROR_STOP=1 -d {db} -f "$SHIM"
fi
files=(); for f in "$@"; do files+=(-f "$f"); done
PGOPTIONS=$SOURCE_OPTIONS psql -X -q -v ON_ERROR_STOP=1 -d {db} "${{files[@]}}" >/dev/null
runuser -u {account} -- "$B/pg_ctl" stop -D "$D/data" -m immediate -w -s
rm -rf "$D"
trap - EXIT
""".format(
    account=SERVER_ACCOUNT, locale=LOCALE, superuser=SUPERUSER, db=FLOOR_DB, wal_mb=WAL_SEGMENT_MB,
    parent=temp_parent(server_account()),  # where the plugin puts its server's data: the same file system
    search_path=SUPABASE_SEARCH_PATH.replace(" ", ""),
    settings=" ".join(f"-c {name}={value}" for name, value in TEST_SETTINGS.items()),
)


# -- the floor ----------------------------------------------------------------------------


def _settings(project_dir: Path):
    pyproject = project_dir / "pyproject.toml"
    return load_settings(
        rootdir=project_dir, invocation_dir=project_dir, pyproject=pyproject if pyproject.is_file() else None
    )


def shim_script(project_dir: Path) -> tuple[str, tuple[str, ...], Path]:
    """What the plugin's build (template.py's TemplateBuild.build) runs as the superuser
    before the project's SQL, as one script; the shim parts; the server's bin directory.
    The build's own shim files (TemplateBuild.shim_files), after the owner role's SQL."""
    settings = _settings(project_dir)
    build = TemplateBuild(settings, Reaper())  # plan() reads files and looks at servers; starts nothing
    plan = build.plan()
    files, _owned = build.shim_files()
    parts = build.parts
    shim = [f.text for f in files]
    owner = owner_role_sql(OWNER_ROLE, FLOOR_DB, supabase="core" in parts).as_string(None)
    assert plan.binaries is not None
    return "\n".join([owner, *shim]), parts, plan.binaries.bindir


def _floor_command(project_dir: Path, scratch: Path, shim: bool) -> list[str]:
    settings = _settings(project_dir)
    script, parts, bindir = shim_script(project_dir)
    shim_file = ""
    if shim and parts:
        path = scratch / "shim.sql"
        path.write_text(script, encoding="utf-8")
        shim_file = str(path)
    # the plugin's build: the sources act as postgres (Supabase's, not a superuser) when the shim is in
    options = f"-c search_path={SUPABASE_SEARCH_PATH.replace(' ', '')} -c role={OWNER_ROLE}" if shim_file else ""
    sources = [str(p) for p in (*settings.migrations, *settings.seed)]
    return ["bash", "-c", FLOOR_SCRIPT, "floor", str(bindir), shim_file, options, *sources]


def shell_floor(project_dir: Path, shim: bool = True) -> float:
    """Wall seconds of the floor pipeline for ``project_dir`` (the shim's SQL is written
    before the clock starts). ``shim=False``: no shim, the sources run as the superuser (a
    plain PostgreSQL project)."""
    scratch = Path(tempfile.mkdtemp(prefix="rlscheck-floor-shim-"))
    try:
        os.chmod(scratch, 0o755)
        command = _floor_command(project_dir, scratch, shim)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd="/")
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"the floor failed for {project_dir} (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return elapsed


# -- the plugin -----------------------------------------------------------------------------


def worked_example(path: Path) -> Path:
    """A user's project for the worked example: a copy of sql/ and the repository's
    [tool.rlscheck] tables (none of its tests, no other pytest configuration)."""
    shutil.copytree(ROOT / "sql", path / "sql", ignore=shutil.ignore_patterns("variants"))
    lines, inside = [], False
    for line in (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            inside = line.startswith("[tool.rlscheck]") or line.startswith("[tool.rlscheck.")
        if inside:
            lines.append(line)
    (path / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _fresh_cache(installation: Path | None) -> Path:
    """A new cache directory (mode 0700, ours) with the per-installation entries of
    ``installation`` copied in (None: empty)."""
    cache = Path(tempfile.mkdtemp(prefix="rlscheck-floor-cache-"))
    os.chmod(cache, 0o755)  # the server's account reaches into it (a 0700 one fails the build: see DOCS-floor.md)
    if installation is not None:
        for entry in sorted(installation.iterdir()):
            if entry.name.startswith(INSTALLATION_ENTRIES):
                subprocess.run(["cp", "-a", "--", str(entry), str(cache / entry.name)], check=True)
    return cache


def run_pytest(project_dir: Path, cache: Path, extra_env: dict[str, str] | None = None,
               prefix: list[str] | None = None, args: tuple[str, ...] = ()) -> tuple[float, str]:
    """Wall seconds of one ``pytest --rlscheck -m rlscheck`` process, and its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RLSCHECK_CACHE_DIR": str(cache), **(extra_env or {})}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [*(prefix or [sys.executable]), *PYTEST[1:], *args]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=project_dir, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    out = done.stdout + done.stderr
    if done.returncode not in (0, 1) or "checks of the schema sweep will run" not in out or BUILD_FAILED in out:
        raise RuntimeError(f"pytest failed in {project_dir} (exit {done.returncode}):\n{out[-3000:]}")
    return elapsed, out


def _summary(out: str) -> str:
    lines = [line for line in out.splitlines() if " passed" in line or " failed" in line]
    return lines[-1].strip("= ") if lines else "?"


# -- the profile -----------------------------------------------------------------------------

def timed_run(project_dir: Path, installation: Path) -> tuple[float, dict[str, float]]:
    """One cold run with the timing plugin: wall seconds and the marks it wrote."""
    cache = _fresh_cache(installation)
    scratch = Path(tempfile.mkdtemp(prefix="rlscheck-floor-marks-"))
    marks = scratch / "marks.json"
    try:
        env = {
            "PYTHONPATH": f"{ROOT / 'src'}:{BENCH}",
            "RLSCHECK_FLOOR_MARKS": str(marks),
        }
        launch = time.time()
        env["RLSCHECK_FLOOR_LAUNCH"] = repr(launch)
        command = [sys.executable, "-m", "pytest", "-p", "floor_timing", *PYTEST[3:]]
        full_env = {**os.environ, **env, "RLSCHECK_CACHE_DIR": str(cache)}
        full_env.pop("PYTHONDONTWRITEBYTECODE", None)
        done = subprocess.run(command, cwd=project_dir, env=full_env, capture_output=True, text=True)
        end = time.time()
        if done.returncode not in (0, 1):
            raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
        t = json.loads(marks.read_text())
        t["launch"], t["exit"] = launch, end
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return end - launch, t


def _covered(span: tuple[float, float], others: list[tuple[float, float]]) -> float:
    """Seconds of ``span`` that the union of ``others`` covers."""
    pieces = sorted((max(span[0], a), min(span[1], b)) for a, b in others if min(span[1], b) > max(span[0], a))
    covered, reach = 0.0, span[0]
    for start, end in pieces:
        start = max(start, reach)
        if end > start:
            covered, reach = covered + end - start, end
    return covered


def phases(t: dict) -> list[tuple[str, float]]:
    """The cold run's wall time in phases that do not overlap: the plugin's plan, server
    start and template build wherever they happen (collection, in practice), the rest of
    each pytest phase without them."""
    spans = {name: tuple(span) for name, span in t["spans"].items()}
    marks = t["marks"]
    plan, server, build, stop = (spans.get(k, (0.0, 0.0)) for k in ("plan", "server", "build", "stop"))
    work = [plan, server, build]
    length = lambda s: s[1] - s[0]  # noqa: E731
    rest = lambda s: length(s) - _covered(s, work)  # noqa: E731
    return [
        ("interpreter start, imports (pytest, plugins)", rest((t["launch"], marks["configured"]))),
        ("  of which up to the first -p plugin's import", marks["early"] - t["launch"]),
        ("configure, collection: the sweep's prepare (catalog, items)", rest((marks["configured"], marks["collected"]))),
        ("plan (server choice, its extension list)", length(plan)),
        ("server start (reaper, cluster copy, pg_ctl start)", length(server) - _covered(server, [plan])),
        ("template build (shim, migrations, seed, ANALYZE)", length(build) - _covered(build, [plan, server])),
        ("session start to the first item", rest((marks["collected"], marks["first_item"]))),
        ("the sweep's items (first to last)", rest((marks["first_item"], marks["last_item"]))),
        ("last item to pytest's exit (server stop included)", rest((marks["last_item"], t["exit"]))),
        ("  of which LocalServer.stop", length(stop)),
    ]


def profile(project_dir: Path, installation: Path, top: int = 25) -> str:
    """One cold run under cProfile: the plugin's functions by cumulative time, and the whole
    process's functions by their own time."""
    cache = _fresh_cache(installation)
    scratch = Path(tempfile.mkdtemp(prefix="rlscheck-floor-prof-"))
    try:
        out = scratch / "run.prof"
        run_pytest(project_dir, cache, prefix=[sys.executable, "-m", "cProfile", "-o", str(out)])
        report = []
        for title, key, restrict in (
            ("cumulative, pytest_rlscheck's functions", "cumulative", ("pytest_rlscheck", top)),
            ("own time, the whole process", "tottime", (top,)),
        ):
            buffer = io.StringIO()
            pstats.Stats(str(out), stream=buffer).sort_stats(key).print_stats(*restrict)
            report.append(f"--- {title} ---\n" + buffer.getvalue().split("\n\n", 2)[-1].strip())
        return "\n".join(report)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


# -- the table ---------------------------------------------------------------------------------


def measure(name: str, project_dir: Path, installation: Path, runs: int, empty: bool) -> list[tuple[str, float]]:
    """Floor, cold and (``empty``) empty-cache runs of ``project_dir``, alternating."""
    samples: dict[str, list[float]] = {"floor": [], "cold": [], "empty": []}
    summary = ""
    for _ in range(runs):
        samples["floor"].append(shell_floor(project_dir))
        cache = _fresh_cache(installation)
        try:
            elapsed, out = run_pytest(project_dir, cache)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        samples["cold"].append(elapsed)
        summary = _summary(out)
        if empty:
            cache = _fresh_cache(None)
            try:
                samples["empty"].append(run_pytest(project_dir, cache)[0])
            finally:
                shutil.rmtree(cache, ignore_errors=True)
    print(f"  {name}: {summary}; samples " + "; ".join(
        f"{k} " + " ".join(f"{v:.2f}" for v in vs) for k, vs in samples.items() if vs), flush=True)
    return [(k, statistics.median(v)) for k, v in samples.items() if v]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=("example", "generated"))
    parser.add_argument("--no-empty", action="store_true", help="skip the empty-cache runs")
    parser.add_argument("--profile", action="store_true", help="also profile one cold run of each project")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="rlscheck-floor-"))
    os.chmod(workdir, 0o755)  # the server's account reads nothing here, but psql's files are ours
    installation = Path(tempfile.mkdtemp(prefix="rlscheck-floor-installation-"))
    os.chmod(installation, 0o755)
    try:
        projects = []
        if args.only in (None, "example"):
            projects.append(("worked example (2 migrations, 5 tables)", worked_example(workdir / "example")))
        if args.only in (None, "generated"):
            projects.append(("generated (100 migrations, 200 tables)", generate_project(workdir / "generated")))
        for _, project in projects:  # the developer's first run ever: the installation cache, bytecode
            run_pytest(project, installation)
            shell_floor(project)
        rows = []
        for name, project in projects:
            rows.append((name, measure(name, project, installation, args.runs, not args.no_empty)))
        print(f"\ncold start against the shell floor (median of {args.runs}, alternating)")
        print(f"{'project':<42} {'run':<48} {'seconds':>8} {'ratio':>6}")
        labels = {
            "floor": "shell floor (initdb, start, shim, sql, stop)",
            "cold": "pytest --rlscheck -m rlscheck, cold",
            "empty": "  the same, empty cache dir (initdb too)",
        }
        for name, values in rows:
            floor = dict(values)["floor"]
            for key, seconds in values:
                print(f"{name:<42} {labels[key]:<48} {seconds:>8.2f} {seconds / floor:>6.2f}")
                name = ""
        if args.profile:
            for name, project in projects:
                total, marks = timed_run(project, installation)
                print(f"\nwall time of one cold run, {name}: {total:.2f} s")
                for label, seconds in phases(marks):
                    print(f"  {label:<58} {seconds:>6.2f}")
                print(f"\ncProfile of one cold run, {name}:\n{profile(project, installation)}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(installation, ignore_errors=True)


if __name__ == "__main__":
    main()
