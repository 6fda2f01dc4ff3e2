"""What to install for a missing extension: the migration error and the server-choice
report say the same, from one table (:mod:`pytest_rlscheck.install_hints`)."""

from __future__ import annotations

import pytest

from pytest_rlscheck import install_hints
from pytest_rlscheck.errors import MigrationError


def test_a_supabase_only_extension_is_not_sent_to_apt(run_sql) -> None:
    """No package has it: the error says so, as the server-choice report does."""
    with pytest.raises(MigrationError) as info:
        run_sql({"001.sql": "create extension wrappers;"}, server="PostgreSQL 15.1 at /usr/lib/postgresql/15/bin")
    report = info.value.render()
    assert "the extension 'wrappers' is not installed on the server in use" in report
    assert "wrappers comes only with Supabase's own PostgreSQL image, supabase/postgres: it has no package" in report
    assert "apt-get" not in report


@pytest.mark.parametrize("name", ["pg_partman", "vector", "postgis", "pg_cron", "pgtap", "rlscheck_nowhere"])
def test_the_migration_error_and_the_server_choice_name_the_same_package(
    run_sql, scratch_db, monkeypatch, name
) -> None:
    with scratch_db.connect() as conn:
        installed = bool(conn.execute("select 1 from pg_available_extensions where name = %s", [name]).fetchone())
    monkeypatch.setattr(install_hints, "_apt_knows", lambda package: True)
    package = install_hints.debian_package(name, 15)
    if installed:  # this server has it (PostgreSQL 18's wheel has vector): the migration applies, no hint
        run_sql({"001.sql": f"create extension if not exists {name} cascade;"})
    else:
        with pytest.raises(MigrationError) as info:
            run_sql({"001.sql": f"create extension {name};"}, server="PostgreSQL 15.1 at /usr/lib/postgresql/15/bin")
        assert f"(Debian/Ubuntu: apt-get install {package})" in info.value.render()
    if name != "vector":  # the report prefers the wheel that has it
        assert f"apt-get install {package}" in install_hints.install_hint(name, 15)
