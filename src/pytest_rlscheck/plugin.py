"""pytest glue: options, configuration, fixtures and the xdist hand-over. Kept thin."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from .cmdline import misread_values
from .config import Settings, load_settings
from .errors import ConfigError
from .fixtures import (  # noqa: F401 - the fixtures, registered with the plugin
    RLS_KEY,
    SESSION_KEY,
    RlscheckWarning,
    rls,
    rls_fresh_db,
    rlscheck_markers,
    rlscheck_session,
)
from .findings import Severity
from .access import SnapshotError
from .baseline import COMPARE_KEY, SnapshotPlan, compare_baseline
from .errors import RlscheckError
from .items import SweepPlugin
from .report import report_path_problem
from .markers import MARKERS, run_marker_checks
from .session import RlsSession

SIGTERM_KEY = pytest.StashKey[Any]()
_SHARED_KEY = pytest.StashKey[dict]()
_COMPARE_KEY = pytest.StashKey[dict]()
PLAN_KEY = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rlscheck", "RLS and schema verification on a disposable PostgreSQL")
    group.addoption(
        "--rlscheck-migrations",
        action="append",
        default=[],
        metavar="PATH",
        help="migration directory, file or glob (repeatable; default: [tool.rlscheck] migrations, "
        "else supabase/migrations)",
    )
    group.addoption(
        "--rlscheck-seed",
        action="append",
        default=[],
        metavar="PATH",
        help="seed file(s) run after the migrations (repeatable; default: [tool.rlscheck] seed, "
        "else supabase/seed.sql)",
    )
    group.addoption(
        "--rlscheck-supabase",
        action="store_const",
        const=True,
        dest="rlscheck_supabase",
        default=None,
        help="always install the Supabase shim (auth schema, API roles...)",
    )
    group.addoption(
        "--rlscheck-no-supabase",
        action="store_const",
        const=False,
        dest="rlscheck_supabase",
        help="never install the Supabase shim (default: when the migrations need it)",
    )
    group.addoption("--rlscheck-pg-bin", metavar="DIR", help="PostgreSQL server binaries (or RLSCHECK_PG_BIN)")
    group.addoption(
        "--rlscheck",
        action="store_true",
        default=False,
        help="sweep the schema: one generated item per rule and object (select them alone with -m rlscheck)",
    )
    group.addoption(
        "--rlscheck-fail-on",
        choices=("error", "warn", "info"),
        default=None,
        help="lowest severity that fails an item (default: [tool.rlscheck] fail_on, else warn)",
    )
    group.addoption(
        "--rlscheck-report",
        action="append",
        default=[],
        metavar="PATH",
        help="write the sweep's findings to PATH.json, PATH.md or PATH.sarif (repeatable)",
    )
    group.addoption(
        "--rlscheck-fuzz",
        action="store_true",
        default=False,
        help="with --rlscheck: fuzz every json/jsonb column that has CHECK constraints (constraint-fuzz items)",
    )
    group.addoption(
        "--rlscheck-fuzz-examples",
        type=int,
        default=200,
        metavar="N",
        help="payloads per column for --rlscheck-fuzz (default 200)",
    )
    group.addoption(
        "--rlscheck-pg-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a PostgreSQL setting for the throw-away server (repeatable; over [tool.rlscheck] server_settings)",
    )
    group.addoption(
        "--rlscheck-no-cache",
        action="store_true",
        default=False,
        help="build the template on this run, neither using nor storing the template cache "
        "(or RLSCHECK_TEMPLATE_CACHE=0)",
    )
    group.addoption(
        "--rlscheck-cache-clear",
        action="store_true",
        default=False,
        help="empty the template cache before the run (entries another run is using stay)",
    )
    group.addoption(
        "--rlscheck-snapshot",
        metavar="PATH",
        help="the access matrix's snapshot (over [tool.rlscheck] snapshot): when it exists, each relation whose "
        "access differs fails rlscheck::<relation>::access-changed",
    )
    group.addoption(
        "--rlscheck-snapshot-update",
        action="store_true",
        default=False,
        help="accept the access as measured: write the snapshot (the access-changed checks pass)",
    )
    group.addoption(
        "--rlscheck-compare",
        metavar="GIT-REV",
        help="measure the access with the migrations as they are at GIT-REV too (a second template on the same "
        "server), and fail access-changed where this tree differs",
    )
    group.addoption(
        "--rlscheck-dsn",
        metavar="URL",
        help="use an existing server (or RLSCHECK_DSN): rlscheck creates and drops its own rlscheck_* databases",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS.values():
        config.addinivalue_line("markers", line)
    config.addinivalue_line("markers", "rlscheck: the generated checks of the --rlscheck sweep")
    misread = misread_values(config)
    if misread:
        raise pytest.UsageError(misread)
    try:
        settings = load_settings(
            rootdir=Path(config.rootpath),
            invocation_dir=Path(config.invocation_params.dir),
            pyproject=_pyproject(config),
            cli_migrations=config.getoption("rlscheck_migrations"),
            cli_seed=config.getoption("rlscheck_seed"),
            cli_supabase=config.getoption("rlscheck_supabase"),
            cli_pg_bin=config.getoption("rlscheck_pg_bin"),
            cli_dsn=config.getoption("rlscheck_dsn"),
            cli_pg_settings=config.getoption("rlscheck_pg_setting"),
            cli_no_cache=config.getoption("rlscheck_no_cache"),
            cli_snapshot=config.getoption("rlscheck_snapshot"),
        )
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        shared = workerinput.get("rlscheck")
        session = RlsSession(settings, worker=workerinput["workerid"], shared=shared)
    else:
        session = RlsSession(settings)
    config.stash[SESSION_KEY] = session
    if workerinput is None:  # said once, by the controller
        _warn_empty_migration_dirs(config, settings)
        if config.getoption("rlscheck_cache_clear"):
            session.clear_template_cache()
    if config.getoption("rlscheck"):
        for path in config.getoption("rlscheck_report"):
            if Path(path).suffix.lower() not in (".json", ".md", ".sarif"):
                raise pytest.UsageError(f"--rlscheck-report {path}: the file must end in .json, .md or .sarif")
            if workerinput is None:  # the controller writes the reports
                problem = report_path_problem(path)
                if problem:
                    raise pytest.UsageError(problem)
        fail_on = config.getoption("rlscheck_fail_on") or settings.sweep.fail_on or "warn"
        fuzz = config.getoption("rlscheck_fuzz_examples") if config.getoption("rlscheck_fuzz") else None
        try:
            plan = SnapshotPlan.of(settings, update=config.getoption("rlscheck_snapshot_update"),
                                   compare=config.getoption("rlscheck_compare"))
            plan.file_baseline(settings.rootdir)  # a snapshot that cannot be read: said now, not at collection
        except (RlscheckError, SnapshotError) as exc:
            raise pytest.UsageError(str(exc)) from None
        config.stash[PLAN_KEY] = plan
        config.pluginmanager.register(SweepPlugin(config, session, Severity.parse(fail_on), fuzz, plan), "rlscheck-sweep")
    _install_sigterm(config)


def _warn_empty_migration_dirs(config: pytest.Config, settings: Settings) -> None:
    """A migrations directory without a ``.sql`` file is probably the wrong one: say so."""
    for directory in settings.empty_migration_dirs:
        config.issue_config_time_warning(
            RlscheckWarning(
                f"rlscheck: no migration will be applied from {directory}: it holds no .sql file (files in its "
                f"subdirectories are not read). It comes from {settings.migration_origin}."
            ),
            stacklevel=2,
        )


def _pyproject(config: pytest.Config) -> Path | None:
    inipath = config.inipath
    if inipath is not None and inipath.name == "pyproject.toml":
        return Path(inipath)
    candidate = Path(config.rootpath) / "pyproject.toml"
    return candidate if candidate.is_file() else None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: build the server and template once, hand them to each worker."""
    session = node.config.stash[SESSION_KEY]
    settings = session.settings
    if settings.migrations or settings.seed or settings.supabase or settings.dsn:
        shared = node.config.stash.get(_SHARED_KEY, None)
        if shared is None:
            shared = node.config.stash[_SHARED_KEY] = session.shared_info()
        node.workerinput["rlscheck"] = shared
    plan = node.config.stash.get(PLAN_KEY, None)
    if plan is not None and plan.compare:  # the revision's matrix, measured once for every worker
        baseline = node.config.stash.get(_COMPARE_KEY, None)
        if baseline is None:
            baseline = node.config.stash[_COMPARE_KEY] = compare_baseline(session, plan.compare)
        node.workerinput[COMPARE_KEY] = baseline


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Check markers run after the test body passed, as part of the test."""
    result = yield
    client = item.stash.get(RLS_KEY, None)
    if client is not None:
        run_marker_checks(item, client)
    return result


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return None
    s = session.settings
    shim = {None: "when needed", True: "on", False: "off"}[s.supabase]
    where = "--rlscheck-dsn" if s.dsn else "throw-away local server"
    lines = [f"rlscheck: {s.describe_sources()}; Supabase shim {shim}; {where}"]
    lines += [f"rlscheck: skipped {path.name} (as the Supabase CLI does: {reason})" for path, reason in s.skipped_migrations]
    lines += [f"rlscheck: {note}" for note in s.notes]
    if s.pg_major is not None:
        lines.append(f"rlscheck: PostgreSQL {s.pg_major} preferred ([db] major_version in supabase/config.toml)")
    if s.server_settings:
        lines.append("rlscheck: server settings: " + ", ".join(f"{name}={value}" for name, value in s.server_settings))
    lines += [f"rlscheck: {line}" for line in session.environment_lines()]
    return lines


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The stand-ins the run used, at the end too: what passed, passed on them."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None or hasattr(config, "workerinput") or not session.server_started:
        return
    lines = session.stand_in_lines()
    if lines:
        terminalreporter.write_sep("-", "rlscheck: stand-ins in use")
        for line in lines:
            terminalreporter.write_line(f"rlscheck: {line}")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
    previous = config.stash.get(SIGTERM_KEY, None)
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _install_sigterm(config: pytest.Config) -> None:
    """SIGTERM ends the run like Ctrl-C, so that teardown stops the server (the default
    action would kill the process on the spot). A handler someone else set is left alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"terminated by signal {signum} (pid {os.getpid()})")

    config.stash[SIGTERM_KEY] = signal.signal(signal.SIGTERM, _terminate)
