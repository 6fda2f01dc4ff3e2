"""The isolation probes reach every statement shape (issue 11): moves per key, UPDATE and
DELETE without a WHERE, PostgREST's upsert, INSERT … RETURNING, anon — each on real
PostgreSQL, failing where the schema leaks and passing where it does not; and the sweep's
severity for a leak that only the statements without a WHERE show (safeupdate)."""

from __future__ import annotations

import re

import pytest

from conftest import GLOBEX, SEED

from pytest_rlscheck.config import SweepConfig
from pytest_rlscheck.errors import RlsAssertionError
from pytest_rlscheck.findings import Severity
from pytest_rlscheck.isolation import ALL_OPS, ANON_OPS, Outcome, anon_outcomes, isolation_outcomes, tenant_key
from pytest_rlscheck.rules import SweepContext
from pytest_rlscheck.catalog import Catalog
from pytest_rlscheck.rules.tenant_leak import check_table, judged, verdict

DOMAIN_POLICY = "domain_id in (select private.get_user_domain_ids((select auth.uid())))"
from pytest_rlscheck.sweep import Sweep
from sweep_variants import findings_after


def outcomes(rls, table, user, other, ops=ALL_OPS):
    rel = rls.relation(table)
    return {o.op: o for o in isolation_outcomes(rls, rel, tenant_key(rel, None, None, rls.config), user, other, ops)[0]}


def drop_composite_keys(rls) -> None:
    rls.execute("alter table messages drop constraint messages_conversation_same_organization_fkey")
    rls.execute("alter table conversations drop constraint conversations_domain_same_organization_fkey")


# -- moves: every key alone and together ------------------------------------------------------


def test_a_move_of_the_tenant_column_alone_is_caught_where_copying_every_key_is_refused(rls, alice, bob) -> None:
    drop_composite_keys(rls)
    rls.execute(f"alter policy conversations_update on conversations with check ({DOMAIN_POLICY})")
    rls.execute(f"create policy by_domain on conversations for select to authenticated using ({DOMAIN_POLICY})")
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_isolated("conversations", user=alice, other=bob, ops=("move",))
    message = str(info.value)
    # the old probe copied domain_id and organization_id together: refused, and the table passed
    assert re.search(r"LEAK move +an own row was moved \(organization_id\): the other tenant then sees it", message)
    assert f"their rows by column organization_id went from {SEED.globex.conversations} to {SEED.globex.conversations + 1})" in message
    # rolled back
    assert rls.scalar("select count(*) from conversations where organization_id = %s", [GLOBEX]) == SEED.globex.conversations


def test_a_move_the_other_tenant_then_sees_is_a_leak(rls, alice, bob) -> None:
    """A foreign key moved alone (the tenant column stays): a leak only because bob's SELECT
    policy admits rows of his domains, whoever's they are."""
    drop_composite_keys(rls)
    rls.execute(f"create policy by_domain on conversations for select to authenticated using ({DOMAIN_POLICY})")
    rls.execute("alter policy conversations_update on conversations with check "
                "(organization_id in (select private.get_user_organization_ids((select auth.uid()))))")
    found = outcomes(rls, "conversations", alice, bob, ("move",))["move"]
    assert found.isolated is False
    assert found.detail.startswith("an own row was moved (domain_id): the other tenant then sees it (")


def test_a_move_that_stays_the_users_own_is_not_a_leak(rls, alice, bob) -> None:
    """Without the composite key an own message can point at bob's conversation: it gets
    through, but it is still alice's by organization_id and bob does not see it."""
    rls.execute("alter table messages drop constraint messages_conversation_same_organization_fkey")
    found = outcomes(rls, "messages", alice, bob, ("move", "move_unfiltered"))
    assert found["move"].isolated is True and found["move_unfiltered"].isolated is True
    assert "conversation_id: moved, but the row(s) stay the user's: not theirs by column organization_id, and the other " \
           "tenant does not see them" in found["move"].detail
    rls.assert_isolated("messages", user=alice, other=bob)


def test_the_unfiltered_move_skips_the_select_policy_on_the_new_row(rls, alice, bob) -> None:
    """PostgreSQL checks the SELECT policies on an UPDATE's new row only when the statement
    reads the table: by address it is refused, without a WHERE it goes through."""
    drop_composite_keys(rls)
    rls.execute(f"alter policy conversations_update on conversations using ({DOMAIN_POLICY}) with check ({DOMAIN_POLICY})")
    found = outcomes(rls, "conversations", alice, bob, ("move", "move_unfiltered"))
    assert found["move"].isolated is True and "refused: new row violates row-level security policy" in found["move"].detail
    assert found["move_unfiltered"].isolated is False
    assert found["move_unfiltered"].detail.startswith(
        f"rows were moved (organization_id): the other tenant then sees it ({SEED.globex.conversations} rows before, "
        f"{SEED.total.conversations} after; their rows by column organization_id went from {SEED.globex.conversations} "
        f"to {SEED.total.conversations})")


# -- UPDATE and DELETE without a WHERE ----------------------------------------------------------


def test_an_update_policy_wider_than_select_is_reached_only_without_a_where(rls, alice, bob) -> None:
    drop_composite_keys(rls)  # with it, their messages moved into alice's organization break it: caught as well
    rls.execute("alter policy messages_update on messages using (organization_id is not null)")
    found = outcomes(rls, "messages", alice, bob, ("update", "update_unfiltered"))
    assert found["update"].isolated is True  # the WHERE reads the table: the SELECT policy hides bob's rows
    assert found["update_unfiltered"].isolated is False
    assert found["update_unfiltered"].detail == (
        f"their rows were taken into the user's tenant: the other tenant's rows went from {SEED.globex.messages} to 0")
    with pytest.raises(RlsAssertionError, match=r"(?s)LEAK update_unfiltered .*\(latent: safeupdate refuses it through the API"):
        rls.assert_isolated("messages", user=alice, other=bob, ops=("update", "update_unfiltered"))


def test_a_delete_policy_wider_than_select_is_reached_only_without_a_where(rls, alice, bob) -> None:
    rls.execute("alter policy messages_delete on messages using (organization_id is not null)")
    found = outcomes(rls, "messages", alice, bob, ("delete", "delete_unfiltered"))
    assert found["delete"].isolated is True
    assert found["delete_unfiltered"] == Outcome(
        "delete_unfiltered", False, f"their rows were deleted: the other tenant's rows went from {SEED.globex.messages} to 0")


def test_policies_no_wider_than_select_vouch_for_the_unfiltered_shapes(rls, alice, bob) -> None:
    found = outcomes(rls, "conversations", alice, bob, ("update_unfiltered", "delete_unfiltered"))
    for op in ("update_unfiltered", "delete_unfiltered"):
        assert found[op].isolated is True and found[op].detail.startswith("reaches none of theirs: the ")
    # a different expression is measured instead: and still isolated
    rls.execute("alter policy conversations_delete on conversations using "
                "(organization_id in (select m.organization_id from organization_members m where m.user_id = (select auth.uid())))")
    measured = outcomes(rls, "conversations", alice, bob, ("delete_unfiltered",))["delete_unfiltered"]
    assert measured == Outcome("delete_unfiltered", True, f"{SEED.acme.conversations} row(s) written, none of the other tenant's")


# -- upsert and INSERT … RETURNING --------------------------------------------------------------


NOTES = """
create table public.notes (id bigint generated by default as identity primary key,
  user_id uuid not null default auth.uid() references auth.users (id), body text not null);
alter table public.notes enable row level security;
create policy notes_select on public.notes for select to authenticated using (user_id is not null);
create policy notes_insert on public.notes for insert to authenticated with check (user_id = (select auth.uid()));
create policy notes_update on public.notes for update to authenticated
  using ({using}) with check (user_id = (select auth.uid()));
insert into public.notes (user_id, body) select id, email from auth.users;
"""


def test_an_upsert_over_their_key_takes_their_row(rls, alice, bob) -> None:
    rls.execute(NOTES.format(using="user_id is not null"))
    found = outcomes(rls, "notes", alice, bob, ("update", "upsert"))
    assert found["update"].isolated is True  # their note stays theirs: WITH CHECK refuses
    assert found["upsert"] == Outcome(
        "upsert", False, "their row was overwritten through ON CONFLICT (id) DO UPDATE: 1 row(s) affected; "
        "the other tenant's rows went from 1 to 0")
    rls.execute("alter policy notes_update on public.notes using (user_id = (select auth.uid()))")
    assert outcomes(rls, "notes", alice, bob, ("upsert",))["upsert"].detail == (
        'refused: new row violates row-level security policy (USING expression) for table "notes"')


def test_insert_returning_is_tried_only_when_the_plain_insert_got_through(rls, alice, bob) -> None:
    found = outcomes(rls, "conversations", alice, bob, ("insert", "insert_returning"))
    assert found["insert_returning"].isolated is True and "refused with the plain insert" in found["insert_returning"].detail
    rls.execute("alter policy conversations_insert on conversations with check (true)")
    found = outcomes(rls, "conversations", alice, bob, ("insert", "insert_returning"))
    assert found["insert"].isolated is False
    # RETURNING adds the SELECT policy's check of the new row, which is bob's: refused
    assert found["insert_returning"].detail == 'refused: new row violates row-level security policy for table "conversations"'
    rls.execute("create policy everyone on conversations for select to authenticated using (true)")
    found = outcomes(rls, "conversations", alice, bob, ("insert", "insert_returning"))
    assert found["insert_returning"].isolated is False
    assert found["insert_returning"].detail.startswith("a copy of one of their rows was inserted and read back (RETURNING *)")


# -- anon -------------------------------------------------------------------------------------


def test_anon_is_put_through_the_probes_where_a_policy_admits_it(rls, alice, bob) -> None:
    rls.assert_isolated("conversations", user=alice, other=bob)  # no policy for anon: nothing to try
    rls.execute("create policy visitors on conversations for select to anon using ((select auth.uid()) is null)")
    with pytest.raises(RlsAssertionError) as info:
        rls.assert_isolated("conversations", user=alice, other=bob)
    message = str(info.value)
    assert "is not isolated: acting as anon, 1 of 19 operations reached the rows of 2222" in message
    assert re.search(rf"LEAK select +anon sees {SEED.globex.conversations} of the other tenant's", message)
    assert "none for anon or PUBLIC that admits a tenant's rows" in message
    rls.assert_isolated("conversations", user=alice, other=bob, anon=False)  # opted out


def test_anon_against_every_tenant(rls) -> None:
    rls.execute("create policy visitors on messages for update using ((select auth.uid()) is null)")
    rel = rls.relation("messages")
    found, theirs = anon_outcomes(rls, rel, tenant_key(rel, None, None))
    assert theirs == "any tenant" and [o.op for o in found] == list(ANON_OPS)
    leaks = {o.op for o in found if o.isolated is False}
    assert leaks == {"update_unfiltered", "move_unfiltered"}  # anon reads none of them: a WHERE finds nothing
    assert next(o for o in found if o.op == "update_unfiltered").detail.startswith("their rows were updated: the tenants' rows")


# -- the sweep: severity by reach, and the verdict ---------------------------------------------


def sweep_table(rls, table: str, config: SweepConfig, principals):
    catalog = Catalog.load(rls.connection, schemas=["public"])
    ctx = SweepContext(catalog, ("public",), config)
    return check_table(rls, ctx, catalog.relation(f"public.{table}"), principals)


def principals_config(alice, bob, **kwargs) -> SweepConfig:
    from pytest_rlscheck.config import PrincipalConfig

    return SweepConfig(principals={"alice": PrincipalConfig(alice.sub, alice.tenant), "bob": PrincipalConfig(bob.sub, bob.tenant)},
                       **kwargs)


def test_a_leak_only_without_a_where_is_latent_unless_safeupdate_is_off(rls, alice, bob) -> None:
    rls.execute("alter policy messages_delete on messages using (organization_id is not null)")
    findings, status = sweep_table(rls, "messages", principals_config(alice, bob), [alice, bob])
    # the runs of both users are one finding, with each run's evidence
    assert {f.severity for f in findings} == {Severity.WARN} and len(findings) == 1
    assert findings[0].message.count("\nAs ") == 2 and findings[0].details["users"] == [alice.sub, bob.sub]
    assert status == "latent leak (delete_unfiltered as alice/bob)"
    assert findings[0].message.endswith(
        "Latent: safeupdate refuses it through the API today; one wider SELECT policy (or a function that runs it) "
        "makes it a leak.")
    findings, status = sweep_table(rls, "messages", principals_config(alice, bob, safeupdate=False), [alice, bob])
    assert {f.severity for f in findings} == {Severity.ERROR} and status == "LEAK (delete as alice/bob)"
    assert "(safeupdate = false: the API runs statements without a WHERE)" in findings[0].message


def test_a_leak_through_the_api_is_an_error_whatever_else_leaks() -> None:
    from pytest_rlscheck.catalog import Relation
    from pytest_rlscheck.isolation import TenantKey

    rel = Relation(1, "public", "t", "r", True, False, "postgres", True, False, False, 0.0)
    both = [Outcome("update", False, "x"), Outcome("update_unfiltered", False, "y")]
    (finding,) = judged(rel, TenantKey("org_id"), "Acting as a", "the rows of b", both, True, {})
    assert finding.severity is Severity.ERROR
    assert finding.message == ("Any signed-in user can change other tenants' rows of public.t. "
                               "Acting as a, 2 operation(s) reached the rows of b: update: x; update_unfiltered: y")


def test_the_verdict_names_what_was_proven_and_for_whom() -> None:
    from pytest_rlscheck.isolation import TenantKey

    ok = [Outcome(op, True, "") for op in ALL_OPS]
    anon = [Outcome(op, True, "") for op in ANON_OPS]
    key = TenantKey("org_id")
    every = "select, insert, update, delete, move, upsert"
    assert verdict([], [("alice", ok), ("bob", ok)], [], key) == f"verified ({every} as alice/bob)"
    assert verdict([], [("alice", ok), ("bob", ok), ("anon", anon)], [], key) == f"verified ({every} as alice/bob and anon)"
    assert verdict([], [("alice", ok)], ["bob"], key) == f"partly verified ({every} as alice; not as bob: no rows of their tenant)"
    unproven = [*ok[:-3], Outcome("move", None, "inconclusive"), *ok[-2:]]
    assert verdict([], [("alice", ok), ("bob", unproven)], [], key) == "not proven (move as bob)"


def test_safeupdate_is_a_validated_setting(tmp_path) -> None:
    from pytest_rlscheck.config import load_settings
    from pytest_rlscheck.errors import ConfigError

    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.rlscheck]\nsafeupdate = false\n")
    assert load_settings(rootdir=tmp_path, invocation_dir=tmp_path, pyproject=pyproject).sweep.safeupdate is False
    pyproject.write_text("[tool.rlscheck]\n")
    assert load_settings(rootdir=tmp_path, invocation_dir=tmp_path, pyproject=pyproject).sweep.safeupdate is True
    pyproject.write_text('[tool.rlscheck]\nsafeupdate = "no"\n')
    with pytest.raises(ConfigError, match=r"\[tool.rlscheck\] safeupdate must be true or false, got 'no'"):
        load_settings(rootdir=tmp_path, invocation_dir=tmp_path, pyproject=pyproject)


def test_a_row_moved_into_a_tenant_column_no_policy_reads_is_no_leak(rls, rlscheck_session) -> None:
    # the policies decide by the user alone: naming another organization changes nobody's access
    found = findings_after(rls, Sweep(rlscheck_session), """
        create table public.notifications (
          id uuid primary key default gen_random_uuid(),
          organization_id uuid not null references public.organizations (id),
          user_id uuid not null references auth.users (id) default auth.uid(),
          body text not null);
        alter table public.notifications enable row level security;
        grant select, insert, update, delete on public.notifications to authenticated;
        create policy own on public.notifications for all to authenticated
          using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
    """)
    assert ("tenant-leak", "public.notifications") not in found, found


def test_the_tenant_roots_own_key_is_no_way_into_another_tenant(rls, rlscheck_session) -> None:
    # anyone may create an organization (policy-always-true says so); a copy of theirs, or their
    # id written over one's own, can only collide with their organization itself
    found = findings_after(rls, Sweep(rlscheck_session), """
        grant insert, update on public.organizations to anon, authenticated;
        create policy anyone_creates on public.organizations for insert with check (true);
        create policy members_rename on public.organizations for update to authenticated
          using (id in (select private.get_user_organization_ids((select auth.uid()))));
    """)
    assert ("tenant-leak", "public.organizations") not in found, found


def test_a_move_is_a_leak_only_by_what_the_other_tenant_then_sees(rls, rlscheck_session) -> None:
    # the policies read organization_id, but a row is seen only by its author: a note moved into
    # the other organization names it, and nobody there sees it — no access changed
    member = "organization_id in (select private.get_user_organization_ids((select auth.uid())))"
    found = findings_after(rls, Sweep(rlscheck_session), f"""
        create table public.drafts (
          id uuid primary key default gen_random_uuid(),
          organization_id uuid not null references public.organizations (id),
          author_id uuid not null references auth.users (id) default auth.uid(),
          body text not null default '');
        alter table public.drafts enable row level security;
        grant select, insert, update, delete on public.drafts to authenticated;
        create policy own on public.drafts for all to authenticated
          using ({member} and author_id = (select auth.uid())) with check (author_id = (select auth.uid()));
    """, severities=True)
    assert not [f for f in found if f[:2] == ("tenant-leak", "public.drafts") and f[2] != "info"], found


@pytest.mark.parametrize("check, forged", [("true", True), ("id = (select auth.uid())", False)])
def test_a_row_keyed_by_its_users_id_is_forged_only_where_a_policy_lets_it(rls, rlscheck_session, check, forged) -> None:
    # profiles.id is the user's id: alice writing a profile with bob's id (his set aside, as if he
    # had none yet) forges his, unless the INSERT policy ties the id to the caller
    found = findings_after(rls, Sweep(rlscheck_session), f"""
        create table public.profiles (id uuid primary key references auth.users (id), name text not null default '');
        alter table public.profiles enable row level security;
        grant select, insert on public.profiles to authenticated;
        create policy read_own on public.profiles for select to authenticated using (id = (select auth.uid()));
        create policy insert_one on public.profiles for insert to authenticated with check ({check});
    """, severities=True)
    leaks = [f for f in found if f[:2] == ("tenant-leak", "public.profiles") and f[2] != "info"]
    assert leaks == ([("tenant-leak", "public.profiles", "error")] if forged else []), found
