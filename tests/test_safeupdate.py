"""safeupdate, as Supabase loads it for the API: an UPDATE or DELETE without a WHERE sent
through as_* is refused with SQLSTATE 21000 and the library's message; the owner is not."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from conftest import ALICE, BOB

from pytest_rlscheck.safeupdate import refusal

TABLE = """
create table public.safe_notes (id int primary key, owner uuid not null, note text);
alter table public.safe_notes enable row level security;
grant select, update, delete on public.safe_notes to authenticated, anon;
create policy own on public.safe_notes for all to authenticated using (owner = (select auth.uid()));
insert into public.safe_notes values (1, '11111111-1111-1111-1111-111111111111', 'a'),
                                     (2, '11111111-1111-1111-1111-111111111111', 'b'),
                                     (9, '22222222-2222-2222-2222-222222222222', 'bob''s');
create function public.wipe_safe_notes() returns void language sql as $$ delete from public.safe_notes $$;
grant execute on function public.wipe_safe_notes() to authenticated;
"""
COUNT = "select count(*) from safe_notes"  # alice's 2 rows, as alice


@pytest.fixture
def notes(rls):
    rls.execute(TABLE)
    return rls


@pytest.mark.parametrize("statement, message", [
    ("delete from safe_notes", "DELETE requires a WHERE clause"),
    ("update safe_notes set note = 'x'", "UPDATE requires a WHERE clause"),
    ("with one as (select 1) delete from safe_notes returning id", "DELETE requires a WHERE clause"),
    ("update safe_notes set note = (select note from safe_notes where id = 1) -- where id = 2", "UPDATE requires a WHERE clause"),
    ("update safe_notes set note = 'where'", "UPDATE requires a WHERE clause"),
], ids=["delete", "update", "with-delete", "where-in-subquery-and-comment", "where-in-string"])
def test_an_unfiltered_statement_is_refused_as_the_user(notes, statement, message) -> None:
    with notes.as_user(ALICE, method="DELETE"):
        with pytest.raises(psycopg.errors.CardinalityViolation) as refused:
            notes.execute(statement)
        assert refused.value.sqlstate == "21000" and refused.value.diag.message_primary == message
        assert notes.scalar(COUNT) == 2  # nothing happened
    with notes.as_anon(), pytest.raises(psycopg.errors.CardinalityViolation):
        notes.execute(statement)


def test_with_a_where_it_runs_and_the_owner_needs_none(notes) -> None:
    with notes.as_user(ALICE, method="PATCH"):
        assert notes.execute("update safe_notes set note = 'x' where true").rowcount == 2
        assert notes.execute("delete from safe_notes where id = %s", [1]).rowcount == 1
        # a DELETE inside a CTE of a SELECT: the library checks the top level only
        assert notes.scalar("with gone as (delete from safe_notes returning 1) select count(*) from gone") == 1
    notes.execute("insert into safe_notes values (3, gen_random_uuid(), 'c')")
    assert notes.execute("delete from safe_notes").rowcount == 2  # the owner (bob's row and 3): no safeupdate
    with notes.as_role("authenticated", {"request.jwt.claims": '{"sub": "%s"}' % ALICE}):
        notes.execute("update safe_notes set note = 'y'")  # a plain role switch is not a request


def test_a_function_that_deletes_everything_when_called_through_the_api(notes) -> None:
    """The library checks the statements inside functions too; the emulation reads only the
    statement sent, so the function's DELETE runs (README: what differs from production)."""
    with notes.as_user(ALICE, method="POST", path="/rpc/wipe_safe_notes"):
        notes.execute("select public.wipe_safe_notes()")
        assert notes.scalar(COUNT) == 0


def test_safeupdate_false_in_the_settings_means_no_refusal(notes) -> None:
    notes.config = dataclasses.replace(notes.config, safeupdate=False)
    with notes.as_user(ALICE):
        assert notes.execute("delete from safe_notes").rowcount == 2


def test_the_isolation_probes_still_run_statements_without_a_where(notes) -> None:
    """The probes push identities through their own SQL: no refusal, no request timeout."""
    notes.execute("alter role authenticated set statement_timeout = '1ms'")
    with notes.as_user(ALICE):
        notes.assert_isolated("safe_notes", user=notes.user(ALICE), other=notes.user(BOB),
                              tenant_column="owner", anon=False)


@pytest.mark.parametrize("text, expected", [
    ("DELETE FROM t", "DELETE requires a WHERE clause"),
    ("delete from t where true", None),
    ("delete /* where */ from t", "DELETE requires a WHERE clause"),
    ("delete from t where id = $$x$$", None),
    ("update t set a = $$ where $$", "UPDATE requires a WHERE clause"),
    ('update t set "where" = 1', "UPDATE requires a WHERE clause"),
    ("update t set a = 1 from u where u.id = t.id", None),
    ("update t set a = 1 from u", "UPDATE requires a WHERE clause"),
    ("delete from t returning (select 1 where true)", "DELETE requires a WHERE clause"),
    ("with recursive r(n) as (select 1 union select n + 1 from r where n < 3) update t set a = 1",
     "UPDATE requires a WHERE clause"),
    ("with d as (delete from t) select 1", None),
    ("select 1; delete from t", "DELETE requires a WHERE clause"),
    ("insert into t values (1) on conflict (id) do update set a = 2", None),
    ("explain delete from t", None),
    ("delete from t where current of c", None),
])
def test_the_reader_finds_what_the_library_refuses(text, expected) -> None:
    assert refusal(text) == expected
