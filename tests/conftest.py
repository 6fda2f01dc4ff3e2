"""Helpers for the plugin's own tests."""

from __future__ import annotations

import itertools
import os
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg import sql

from pytest_rlscheck.migrations import SqlFile, apply_files
from pytest_rlscheck.session import Database, RlsSession

_counter = itertools.count()
#: The pytest runs the tests start build their template every time, as each test says
#: (a kill during the build must find a build): tests/test_template_cache.py turns the
#: template cache on for its own runs, with a cache directory of their own.
os.environ["RLSCHECK_TEMPLATE_CACHE"] = "0"
#: Small Supabase-like projects, each run as its own pytest session by test_projects.py.
collect_ignore = ["projects"]

EXAMPLE = Path(__file__).resolve().parents[1] / "sql"
#: The seed's users and their tenants.
ALICE = "11111111-1111-1111-1111-111111111111"
BOB = "22222222-2222-2222-2222-222222222222"
ACME = "aaaaaaaa-0000-0000-0000-000000000001"
GLOBEX = "bbbbbbbb-0000-0000-0000-000000000002"


@dataclass(frozen=True)
class TenantCounts:
    """Rows of one tenant (or of both, ``SEED.total``) in the worked example's seed."""

    members: int
    domains: int
    conversations: int
    messages: int


@dataclass(frozen=True)
class SeedCounts:
    """What sql/seed.sql inserts: the one place tests take the example's row counts from.

    The numbers are the seed's own (its header and its ``values`` lists), written down
    here rather than read back through the plugin; test_impersonation's
    ``test_owner_sees_the_whole_seed`` checks them against the database, as the owner,
    table by table and tenant by tenant."""

    acme: TenantCounts
    globex: TenantCounts

    @property
    def total(self) -> TenantCounts:
        return TenantCounts(*(a + g for a, g in zip(_fields(self.acme), _fields(self.globex))))

    def of(self, tenant: str) -> TenantCounts:
        """The counts of a tenant by its organization id."""
        return {ACME: self.acme, GLOBEX: self.globex}[str(tenant)]


def _fields(counts: TenantCounts) -> tuple[int, ...]:
    return (counts.members, counts.domains, counts.conversations, counts.messages)


SEED = SeedCounts(
    acme=TenantCounts(members=1, domains=3, conversations=1200, messages=3400),
    globex=TenantCounts(members=1, domains=2, conversations=932, messages=2598),
)
#: The worked example's two users, as a project configures them.
EXAMPLE_PRINCIPALS = """
[tool.rlscheck.principals.alice]
sub = "11111111-1111-1111-1111-111111111111"
tenant = "aaaaaaaa-0000-0000-0000-000000000001"

[tool.rlscheck.principals.bob]
sub = "22222222-2222-2222-2222-222222222222"
tenant = "bbbbbbbb-0000-0000-0000-000000000002"
"""


#: A one-table project with a per-user policy, and a row for alice and one for someone else.
NOTES_SCHEMA = {
    "001_notes.sql": """
        create table notes (id serial primary key, owner uuid not null default auth.uid(), body text);
        alter table notes enable row level security;
        create policy own on notes for all to authenticated using (owner = (select auth.uid()));
    """
}
NOTES_SEED = "insert into notes (owner, body) values ('11111111-1111-1111-1111-111111111111', 'a'), (gen_random_uuid(), 'b');"


@pytest.fixture
def scratch_db(rlscheck_session: RlsSession) -> Iterator[Database]:
    """An empty database (no migrations, no shim) on the session's server, dropped after."""
    server = rlscheck_session.server
    name = f"rlscheck_{rlscheck_session.run_id}_{rlscheck_session.worker}_scratch{next(_counter)}"
    with server.admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    try:
        yield Database(server, name, "")
    finally:
        with server.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def run_sql(scratch_db: Database) -> Callable[..., object]:
    """Apply {display_name: sql} files to the scratch database, in order."""

    def run(files: dict[str, str], kind: str = "migration", server: str = "PostgreSQL (test server)") -> object:
        sql_files = [SqlFile(name, textwrap.dedent(text).lstrip("\n"), kind) for name, text in files.items()]
        with scratch_db.connect() as conn:
            return apply_files(conn, sql_files, server=server)

    return run


def write_project(pytester: pytest.Pytester, migrations: dict[str, str], seed: str | None = None) -> None:
    """A project directory with migrations (and a seed) for a pytest subprocess."""
    for name, text in migrations.items():
        pytester.path.joinpath("migrations").mkdir(exist_ok=True)
        pytester.path.joinpath("migrations", name).write_text(textwrap.dedent(text).lstrip("\n"))
    if seed is not None:
        pytester.path.joinpath("seed.sql").write_text(textwrap.dedent(seed).lstrip("\n"))


@pytest.fixture(scope="session")
def seed_counts() -> SeedCounts:
    """The worked example's seed counts (:data:`SEED`), for tests that take fixtures."""
    return SEED


@pytest.fixture
def alice(rls):
    """Alice of Acme, as the isolation checks take a user."""
    return rls.user(ALICE, tenant=ACME)


@pytest.fixture
def bob(rls):
    """Bob of Globex."""
    return rls.user(BOB, tenant=GLOBEX)


#: The example's principals, and the tenant root's key (its own id).
EXAMPLE_CONFIG = EXAMPLE_PRINCIPALS + """
[tool.rlscheck.tables."public.organizations"]
tenant_column = "id"
"""


def example_project(pytester: pytest.Pytester, extra_sql: str = "", config: str = "") -> None:
    """The worked example (plus ``extra_sql`` as a last migration) in a project of its own,
    laid out as the Supabase CLI lays it out."""
    migrations = pytester.path / "supabase" / "migrations"
    migrations.mkdir(parents=True)
    for path in sorted((EXAMPLE / "migrations").glob("*.sql")):
        (migrations / path.name).write_text(path.read_text())
    if extra_sql:
        (migrations / "20250101000000_change.sql").write_text(textwrap.dedent(extra_sql))
    (pytester.path / "supabase" / "seed.sql").write_text((EXAMPLE / "seed.sql").read_text())
    pytester.makefile(".toml", pyproject="[tool.rlscheck]\n" + textwrap.dedent(config) + EXAMPLE_CONFIG)

