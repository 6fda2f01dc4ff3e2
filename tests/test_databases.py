"""The session's databases: a connection string and connect() that connect the same way."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from pytest_rlscheck.databases import Database
from pytest_rlscheck.server import ExternalServer

#: The Supabase search_path, as the plugin's ``options`` set it.
SEARCH_PATH = '"$user",public,extensions'
#: What a connection is: where, as whom, and the settings the plugin's options set (or a
#: DSN's options and parameters do).
SETTINGS = """
select current_database(), current_user, session_user,
       current_setting('application_name'), current_setting('search_path'), current_setting('work_mem')
"""


def _seen(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = conn.execute(SETTINGS).fetchone()
    assert row is not None
    return (*row, conn.info.get_parameters())  # the libpq parameters in effect (no password)


def test_the_dsn_and_connect_connect_the_same_way(rls_fresh_db) -> None:
    with psycopg.connect(rls_fresh_db.dsn) as by_dsn, rls_fresh_db.connect() as by_connect:
        assert _seen(by_dsn) == _seen(by_connect)
        database, user, _, _, search_path, _ = _seen(by_dsn)[:6]
    assert database == rls_fresh_db.scalar("select current_database()")
    assert user == rls_fresh_db.scalar("select current_user")  # postgres, as the rls object acts
    assert search_path == SEARCH_PATH  # the options the plugin sets, both ways


def test_a_dsn_s_own_options_and_parameters_stay_both_ways(rls_fresh_db, rlscheck_session) -> None:
    """On --rlscheck-dsn with ``options`` of its own, ours come after them, in the
    connection string as in connect()."""
    dsn = make_conninfo(
        rlscheck_session.server.conninfo("postgres"),
        options="-c work_mem=7MB -c search_path=elsewhere",
        application_name="rlscheck_dsn_test",
    )
    theirs = Database(ExternalServer(dsn), rls_fresh_db.database.name, rls_fresh_db.database.options)
    with psycopg.connect(theirs.dsn) as by_dsn, theirs.connect() as by_connect:
        seen = _seen(by_dsn)
        assert seen == _seen(by_connect)
    assert seen[3:6] == ("rlscheck_dsn_test", SEARCH_PATH, "7MB")
    assert "-c work_mem=7MB" in seen[6]["options"]
