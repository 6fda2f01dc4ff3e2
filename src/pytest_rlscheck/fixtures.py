"""The fixtures: ``rls`` (a rolled-back transaction per test) and ``rls_fresh_db``."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
import pytest

from .client import Rls, TestTransaction
from .errors import RlscheckError, RlscheckWarning
from .markers import CHECK_MARKERS, start_identity
from .session import RlsSession

__all__ = ["RlscheckWarning", "rls", "rls_fresh_db", "rlscheck_session"]

SESSION_KEY = pytest.StashKey[RlsSession]()
REPORTED_KEY = pytest.StashKey[str]()
RLS_KEY = pytest.StashKey[Rls]()
T = TypeVar("T")



def setup_or_fail(config: pytest.Config, step: Callable[[], T]) -> T:
    """Run a setup step; show a plugin error as a clean pytest error, without a traceback.

    The first error of the session is shown whole; later tests refer back to it."""
    try:
        return step()
    except RlscheckError as exc:
        report = exc.render()
    except psycopg.OperationalError as exc:
        report = _lost(config, exc)
    # outside the except block, so that pytest shows no chained exception
    if config.stash.get(REPORTED_KEY, None) == report:
        pytest.fail(f"rlscheck: database setup failed (reported in full above): {report.splitlines()[0]}", pytrace=False)
    config.stash[REPORTED_KEY] = report
    pytest.fail(report, pytrace=False)


def _lost(config: pytest.Config, exc: psycopg.Error) -> str:
    session = config.stash.get(SESSION_KEY, None)
    more = session.lost_report() if session is not None else ""
    return f"rlscheck: lost the database server: {str(exc).strip()}" + (f"\n{more}" if more else "")


def _rolled_back(request: pytest.FixtureRequest, transaction: TestTransaction) -> bool:
    """End the test's transaction; a server that died meanwhile is reported, not a traceback."""
    try:
        return transaction.end()
    except psycopg.OperationalError as exc:
        report = _lost(request.config, exc)
    pytest.fail(f"{request.node.nodeid}: the test's transaction could not be rolled back.\n{report}", pytrace=False)


@pytest.fixture(scope="session")
def rlscheck_session(pytestconfig: pytest.Config) -> RlsSession:
    """The session's server, template and worker database (built on first use)."""
    return pytestconfig.stash[SESSION_KEY]


@pytest.fixture
def rls(request: pytest.FixtureRequest, rlscheck_session: RlsSession) -> Iterator[Rls]:
    """A connection to the migrated database, inside a transaction rolled back after the test.

    With ``@pytest.mark.rls_fresh_db`` the test gets a database of its own instead."""
    if request.node.get_closest_marker("rls_fresh_db"):
        yield from _fresh(request, rlscheck_session)
        return
    config = request.config
    conn = setup_or_fail(config, rlscheck_session.worker_connection)
    client = Rls(conn, rlscheck_session.worker_database(), transactional=True, config=rlscheck_session.settings.sweep)
    transaction = setup_or_fail(config, client.test_transaction().begin)
    try:
        start_identity(request.node, client)
        request.node.stash[RLS_KEY] = client
        yield client
    finally:
        if not _rolled_back(request, transaction):
            rlscheck_session.reset_worker_database()
            warnings.warn(
                RlscheckWarning(
                    f"{request.node.nodeid} ended the test transaction itself (COMMIT or ROLLBACK), so its "
                    "changes could have reached later tests; rlscheck cloned the database again from the "
                    "template. Use the rls_fresh_db fixture (or @pytest.mark.rls_fresh_db) for tests that commit."
                ),
                stacklevel=1,
            )


@pytest.fixture
def rls_fresh_db(request: pytest.FixtureRequest, rlscheck_session: RlsSession) -> Iterator[Rls]:
    """A database cloned from the template for this test alone: commits are allowed, and
    ``rls_fresh_db.connect()`` opens more connections to it. Dropped after the test."""
    yield from _fresh(request, rlscheck_session)


@pytest.fixture(autouse=True)
def rlscheck_markers(request: pytest.FixtureRequest) -> None:
    """A test with a check marker gets the rls fixture even if it does not ask for it."""
    if any(request.node.get_closest_marker(name) for name in (*CHECK_MARKERS, "rls_user")):
        request.getfixturevalue("rls")


def _fresh(request: pytest.FixtureRequest, session: RlsSession) -> Iterator[Rls]:
    database = setup_or_fail(request.config, session.fresh_database)
    conn: Any = None
    lost: str | None = None
    try:
        conn = setup_or_fail(request.config, lambda: database.connect(autocommit=True))
        client = Rls(conn, database, transactional=False, config=session.settings.sweep)
        start_identity(request.node, client)
        request.node.stash[RLS_KEY] = client
        with client.test_transaction():  # not transactional: ending it forgets the identities
            yield client
    finally:
        if conn is not None:
            conn.close()
        try:
            session.drop(database.name)
        except psycopg.OperationalError as exc:
            lost = _lost(request.config, exc)
    if lost is not None:
        pytest.fail(f"{request.node.nodeid}: its database could not be dropped.\n{lost}", pytrace=False)
