"""Commit-time checks: every PostgREST request commits, so deferred constraints and deferred
constraint triggers fire at its end. A statement run through as_* (and the rows that
assert_accepted / assert_rejected insert) is checked as its commit would check it."""

from __future__ import annotations

import psycopg
import pytest

from conftest import ALICE

TABLES = """
create table public.deferred_parent (id int primary key);
create table public.deferred_rows (
  id int primary key,
  code text unique deferrable initially deferred,
  parent int references public.deferred_parent deferrable initially deferred,
  amount int not null default 0
);
create function public.deferred_rows_positive() returns trigger language plpgsql as $$
begin
  if new.amount < 0 then
    raise exception using errcode = 'P0042', message = 'amount went negative at commit';
  end if;
  return null;
end $$;
create constraint trigger amount_at_commit after insert or update on public.deferred_rows
  deferrable initially deferred for each row execute function public.deferred_rows_positive();
insert into public.deferred_parent values (1);
insert into public.deferred_rows values (1, 'a', 1, 0);
grant select, insert, update on public.deferred_rows to authenticated;
grant select on public.deferred_parent to authenticated;
"""
COUNT = "select count(*) from deferred_rows"


@pytest.fixture
def deferred(rls):
    rls.execute(TABLES)
    return rls


def test_a_deferred_duplicate_fails_at_the_end_of_the_request(deferred) -> None:
    with deferred.as_user(ALICE, method="POST"):
        with pytest.raises(psycopg.errors.UniqueViolation) as refused:
            deferred.execute("insert into deferred_rows (id, code) values (2, 'a')")
        assert refused.value.diag.constraint_name == "deferred_rows_code_key"
        deferred.execute("insert into deferred_rows (id, code) values (3, 'b')")  # a good row still goes in
    assert deferred.scalar(COUNT) == 2  # the refused statement was undone


def test_a_deferred_foreign_key_to_a_missing_row_fails(deferred) -> None:
    with deferred.as_user(ALICE, method="POST"):
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            deferred.execute("insert into deferred_rows (id, parent) values (2, 99)")
    assert deferred.scalar(COUNT) == 1


def test_a_deferred_constraint_trigger_raises_its_own_error(deferred) -> None:
    with deferred.as_user(ALICE, method="PATCH"):
        with pytest.raises(psycopg.Error, match="amount went negative at commit") as refused:
            deferred.execute("update deferred_rows set amount = -1 where id = 1")
        assert refused.value.sqlstate == "P0042"
    assert deferred.scalar("select amount from deferred_rows where id = 1") == 0


def test_the_owner_keeps_deferred_semantics(deferred) -> None:
    """The owner's statements are never committed: their deferred checks stay pending (a
    request that follows fires them, as the owner's own commit would have first)."""
    deferred.execute("insert into deferred_rows (id, code) values (2, 'a')")
    assert deferred.scalar(COUNT) == 2
    assert deferred.scalar("show transaction_read_only") == "off"
    with deferred.as_user(ALICE, method="POST"), pytest.raises(psycopg.errors.UniqueViolation):
        deferred.execute("insert into deferred_rows (id, code) values (3, 'c')")
    deferred.execute("delete from deferred_rows where id = 2")
    with deferred.as_user(ALICE, method="POST"):  # nothing pending fails any more
        deferred.execute("insert into deferred_rows (id, code) values (3, 'c')")


def test_a_passing_check_leaves_constraint_modes_and_pending_checks_alone(deferred) -> None:
    with deferred.as_user(ALICE, method="POST"):
        deferred.execute("insert into deferred_rows (id, code) values (2, 'b')")
    # still deferred for the owner: a duplicate is accepted until the end of a statement that checks
    deferred.execute("insert into deferred_rows (id, code) values (3, 'b')")
    with deferred.as_user(ALICE, method="POST"), pytest.raises(psycopg.errors.UniqueViolation):
        deferred.execute("select 1")


def test_assert_rejected_sees_a_deferred_duplicate(deferred) -> None:
    deferred.assert_rejected("deferred_rows", {"id": 5, "code": "a"}, sqlstate="23505",
                             constraint="deferred_rows_code_key")
    deferred.assert_accepted("deferred_rows", {"id": 5, "code": "z", "parent": 1})
    with pytest.raises(AssertionError, match="23503"):
        deferred.assert_accepted("deferred_rows", {"id": 6, "code": "y", "parent": 42})
