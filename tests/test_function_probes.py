"""Functions called and triggers fired with the other tenant's ids, on the worked example:
what comes back, what changes, and that nothing stays behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ACME, ALICE, BOB, GLOBEX, SEED

import pytest_rlscheck
from pytest_rlscheck.catalog import Catalog
from pytest_rlscheck.effects import Scope
from pytest_rlscheck.function_probes import (
    ROW_ID,
    TENANT_ID,
    USER_ID,
    call_function,
    function_arguments,
    id_kind,
    write_attempts,
    write_columns,
)
from pytest_rlscheck.impersonation import anon_identity
from pytest_rlscheck.rules import SweepContext
from pytest_rlscheck.rules.function_calls import id_parameters, leaky_calls
from pytest_rlscheck.sqlsplit import split
from pytest_rlscheck.tenancy import TenantKey

PACKAGE = Path(pytest_rlscheck.__file__).parent
SCHEMAS = ("public",)


def context(rls) -> SweepContext:
    return SweepContext(Catalog.load(rls.connection, schemas=SCHEMAS, functions=True), SCHEMAS, rls.config)


def function(ctx: SweepContext, name: str):
    return next(f for f in ctx.catalog.functions if f.name == name)


def call(rls, ctx, name, caller, other, identity=None):
    fn = function(ctx, name)
    ids = id_parameters(ctx, fn)
    args = function_arguments(rls, ctx.catalog, ctx.schemas, fn, ids, other, ctx.config)
    scope = Scope.of(rls, ctx.catalog, ctx.schemas, ctx.config) if fn.volatility == "v" else None
    return call_function(rls, fn, args, identity or rls.identity_for(caller), other, caller="test", scope=scope,
                         judge_answer=bool({TENANT_ID, ROW_ID} & set(ids.values())))


def test_parameters_are_told_apart_by_name() -> None:
    assert id_kind("p_user_id") == USER_ID and id_kind("_viewer", user_columns={"viewer"}) == USER_ID
    assert id_kind("org") == TENANT_ID and id_kind("p_organization_ids") == TENANT_ID
    assert id_kind("_gym_id", tenant_columns={"gym_id"}) == TENANT_ID
    assert id_kind("p_status") is None and id_kind("p_conversation_id") is None


def test_arguments_are_the_other_tenants_ids_and_rows(rls, bob) -> None:
    rls.execute("""
        create function public.move_message(p_org_id uuid, p_message_id uuid, p_note text,
                                            p_limit int default 10, _viewer uuid default auth.uid())
        returns void language sql security definer set search_path = '' as $$ select $$
    """)
    ctx = context(rls)
    fn = function(ctx, "move_message")
    ids = id_parameters(ctx, fn)
    assert ids == {"p_org_id": TENANT_ID, "_viewer": USER_ID, "p_message_id": ROW_ID}
    args = {a.name: a for a in function_arguments(rls, ctx.catalog, ctx.schemas, fn, ids, bob, ctx.config)}
    assert set(args) == {"p_org_id", "p_message_id", "p_note", "_viewer"}  # p_limit keeps its DEFAULT
    assert args["p_org_id"].value == GLOBEX and args["_viewer"].value == BOB and args["_viewer"].named
    owner = rls.owner_fetchall("select organization_id::text from public.messages where id = %s", [args["p_message_id"].value])
    assert owner == [(GLOBEX,)]  # one of bob's messages, read with the owner's rights
    assert args["p_note"].value == "rlscheck"


def test_a_definer_function_that_returns_their_rows_leaks_and_one_that_checks_does_not(rls, alice, bob) -> None:
    rls.execute("""
        create function public.org_rows(p_org_id uuid) returns setof public.conversations
        language sql stable security definer set search_path = ''
        as $$ select * from public.conversations where organization_id = p_org_id $$;
        create function public.org_rows_checked(p_org_id uuid) returns setof public.conversations
        language plpgsql stable security definer set search_path = '' as $$
        begin
          if p_org_id not in (select m.organization_id from public.organization_members m
                              where m.user_id = (select auth.uid())) then
            raise exception 'not yours' using errcode = '42501';
          end if;
          return query select * from public.conversations c where c.organization_id = p_org_id;
        end $$;
        create function public.org_rows_invoker(p_org_id uuid) returns setof public.conversations
        language sql stable as $$ select * from public.conversations where organization_id = p_org_id $$;
        create function public.org_echo(p_org_id uuid) returns uuid language sql immutable as $$ select p_org_id $$;
    """)
    ctx = context(rls)
    leak = call(rls, ctx, "org_rows", alice, bob)
    assert leak.leaked and leak.theirs == leak.rows == SEED.globex.conversations
    assert leak.statement == f"""select * from "public"."org_rows"('{GLOBEX}'::uuid)"""
    assert call(rls, ctx, "org_rows", None, bob, identity=anon_identity()).leaked  # anon too
    checked = call(rls, ctx, "org_rows_checked", alice, bob)
    assert not checked.leaked and checked.error.startswith("42501")
    assert not call(rls, ctx, "org_rows_checked", bob, bob).error  # the check admits their own
    invoker = call(rls, ctx, "org_rows_invoker", alice, bob)
    assert not invoker.leaked and invoker.rows == 0  # RLS applies inside
    echo = call(rls, ctx, "org_echo", alice, bob)
    assert not echo.leaked and echo.rows == 1  # the id it was given is not theirs to leak


def test_an_answer_without_ids_leaks_when_it_is_the_owners(rls, alice, bob) -> None:
    rls.execute("""
        create function public.org_size(p_org_id uuid) returns bigint
        language sql stable security definer set search_path = ''
        as $$ select count(*) from public.messages where organization_id = p_org_id $$;
        create function public.my_org_size(p_org_id uuid) returns bigint
        language sql stable security definer set search_path = ''
        as $$ select count(*) from public.messages where organization_id in
              (select m.organization_id from public.organization_members m where m.user_id = (select auth.uid())) $$;
    """)
    ctx = context(rls)
    size = call(rls, ctx, "org_size", alice, bob)
    assert size.leaked and size.same_as_owner and not size.theirs
    # it answers, but with the caller's own count: not the owner's answer for bob's tenant
    own = call(rls, ctx, "my_org_size", alice, bob)
    assert not own.leaked and own.rows == 1


def test_what_a_function_changes_of_theirs_is_a_leak_and_nothing_stays(rls, alice, bob) -> None:
    rls.execute("""
        create function public.drop_message(p_message_id uuid) returns void
        language sql security definer set search_path = ''
        as $$ delete from public.messages where id = p_message_id $$;
        create function public.drop_message_invoker(p_message_id uuid) returns void
        language sql as $$ delete from public.messages where id = p_message_id $$;
    """)
    ctx = context(rls)
    scope = Scope.of(rls, ctx.catalog, ctx.schemas, ctx.config)
    before = scope.snapshot(rls)
    dropped = call(rls, ctx, "drop_message", alice, bob)
    assert dropped.leaked
    assert [(c.table, c.owner, c.removed) for c in dropped.changes] == [("public.messages", GLOBEX, 1)]
    assert not call(rls, ctx, "drop_message_invoker", alice, bob).leaked
    assert scope.snapshot(rls) == before  # rolled back
    assert rls.identity is None and rls.scalar("select current_user") == "postgres"


def test_leaky_calls_is_one_finding_with_the_calls(rls, alice, bob) -> None:
    rls.execute("""
        create function public.org_rows(p_org_id uuid) returns setof public.conversations
        language sql stable security definer set search_path = ''
        as $$ select * from public.conversations where organization_id = p_org_id $$;
    """)
    ctx = context(rls)
    findings, status = leaky_calls(rls, ctx, function(ctx, "org_rows"), [alice, bob], {}, "tenant-leak")
    assert status == "LEAK" and len(findings) == 1
    assert set(findings[0].details["callers"]) == {f"user {ALICE}", "anon"}  # one pair shows it
    assert f"""select * from "public"."org_rows"('{GLOBEX}'::uuid)""" in findings[0].message
    rls.execute("revoke execute on function public.org_rows(uuid) from public, anon, authenticated")
    assert id_parameters(context(rls), function(context(rls), "org_rows")) == {}  # the API cannot call it


JOIN_REQUESTS = """
create table public.requests (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id),
  organization_id uuid not null references public.organizations (id),
  file_path text
);
alter table public.requests enable row level security;
create policy requests_own on public.requests for all to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
insert into public.requests (user_id, organization_id)
select m.user_id, m.organization_id from public.organization_members m;
"""


def _writes(rls, user, other, command="INSERT"):
    ctx = context(rls)
    rel = ctx.catalog.relation("public.requests")
    scope = Scope.of(rls, ctx.catalog, ctx.schemas, ctx.config)
    columns = write_columns(rel, ctx.tenant_key(rel), set(), set(), ctx.config, ctx.catalog,
                            storage=scope.kind("storage.objects") is not None)
    return columns, write_attempts(rls, rel, command, columns, user, other, scope, ctx.config)


@pytest.mark.parametrize("timing", ["before", "after"])
def test_a_definer_trigger_that_joins_the_named_organization_is_caught(rls, alice, bob, timing) -> None:
    for statement in split(JOIN_REQUESTS + f"""
        create function public.approve() returns trigger language plpgsql security definer set search_path = '' as $$
        begin
          insert into public.organization_members (organization_id, user_id) values (new.organization_id, new.user_id)
          on conflict do nothing;
          return new;
        end $$;
        create trigger approve {timing} insert or update on public.requests for each row execute function public.approve();
    """):
        rls.execute(statement.text)
    columns, attempts = _writes(rls, alice, bob)
    assert columns == {"user_id": USER_ID, "organization_id": TENANT_ID}
    leaked = [a for a in attempts if a.leaked]
    assert len(leaked) == 1 and '"organization_id": "' + GLOBEX in leaked[0].statement
    assert [(c.table, c.owner, c.added) for c in leaked[0].changes] == [("public.organization_members", GLOBEX, 1)]
    refused = [a for a in attempts if a.error]  # user_id = bob's: the policy refuses it, the trigger's work goes with it
    assert refused and all(a.error.startswith("42501") for a in refused)
    _, updates = _writes(rls, alice, bob, "UPDATE")
    assert any(a.leaked for a in updates)
    assert rls.scalar("select count(*) from public.organization_members") == SEED.total.members


def test_a_definer_trigger_that_writes_the_rows_own_tenant_is_not(rls, alice, bob) -> None:
    for statement in split(JOIN_REQUESTS + """
        create table public.request_log (organization_id uuid not null, request_id uuid not null);
        create function public.log_request() returns trigger language plpgsql security definer set search_path = '' as $$
        begin
          insert into public.request_log values (new.organization_id, new.id);
          return new;
        end $$;
        create trigger log after insert on public.requests for each row execute function public.log_request();
        alter policy requests_own on public.requests
          with check (user_id = (select auth.uid())
                      and organization_id in (select private.get_user_organization_ids((select auth.uid()))));
    """):
        rls.execute(statement.text)
    _, attempts = _writes(rls, alice, bob)
    assert attempts and not any(a.leaked for a in attempts)


def test_a_definer_trigger_that_deletes_the_object_at_the_path_given_is_caught(rls, alice, bob) -> None:
    """The example has no storage; the shim's storage schema is applied in the transaction."""
    for statement in split((PACKAGE / "sql" / "supabase_storage.sql").read_text()):
        rls.execute(statement.text)
    for statement in split(JOIN_REQUESTS + f"""
        insert into storage.buckets (id, name) values ('files', 'files');
        insert into storage.objects (bucket_id, name, owner)
        values ('files', '{GLOBEX}/report.pdf', '{BOB}'), ('files', '{ACME}/notes.txt', '{ALICE}');
        create function public.replace_file() returns trigger language plpgsql security definer set search_path = '' as $$
        begin
          delete from storage.objects o where o.bucket_id = 'files' and o.name = new.file_path;  -- "make room"
          return new;
        end $$;
        create trigger replace_file before insert on public.requests for each row execute function public.replace_file();
    """):
        rls.execute(statement.text)
    columns, attempts = _writes(rls, alice, bob)
    assert columns["file_path"] == "path"
    leaked = [a for a in attempts if a.leaked]
    assert leaked and [(c.table, c.owner, c.removed) for c in leaked[0].changes] == [("storage.objects", BOB, 1)]
    assert rls.scalar("select count(*) from storage.objects") == 2


def test_triggers_are_read_in_bulk_with_what_their_function_runs_as(rls) -> None:
    for statement in split(JOIN_REQUESTS + """
        create function public.noop() returns trigger language plpgsql security definer set search_path = ''
        as $$ begin return new; end $$;
        create trigger a_noop before update of organization_id on public.requests
          for each row execute function public.noop();
        create trigger b_noop after insert or delete on public.requests execute function public.noop();
        alter table public.requests disable trigger b_noop;
    """):
        rls.execute(statement.text)
    rel = context(rls).catalog.relation("public.requests")
    first, second = rel.triggers  # foreign keys' internal triggers are not listed
    assert (first.name, first.timing, first.events, first.row_level, first.columns) == (
        "a_noop", "BEFORE", ("UPDATE",), True, ("organization_id",))
    assert first.security_definer and first.function == "public.noop" and first.fires_on("UPDATE")
    assert (second.timing, second.events, second.row_level, second.enabled) == ("AFTER", ("INSERT", "DELETE"), False, False)
    assert not second.fires_on("INSERT")  # disabled


def test_a_call_that_errors_is_not_proven_and_one_the_schema_refuses_is_verified(rls, alice, bob) -> None:
    rls.execute("""
        create function public.org_rows_by_kind(p_org_id uuid, p_kind text) returns setof public.conversations
        language sql stable security definer set search_path = ''
        as $$ select * from public.conversations where organization_id = p_org_id and p_kind::int > 0 $$;
        create function public.org_rows_raising(p_org_id uuid) returns setof public.conversations
        language plpgsql stable security definer set search_path = ''
        as $$ begin raise exception 'not yours'; end $$;
    """)
    ctx = context(rls)
    findings, status = leaky_calls(rls, ctx, function(ctx, "org_rows_by_kind"), [alice, bob], {}, "tenant-leak")
    # not verified: info (the severity model), and the status column says so
    assert status == "not proven" and [f.severity.name for f in findings] == ["INFO"]
    assert "22P02" in findings[0].message and "not verified" in findings[0].message
    broken = call(rls, ctx, "org_rows_by_kind", alice, bob)  # 'rlscheck'::int: the plain value, not a refusal
    assert broken.error.startswith("22P02") and broken.failed and not broken.refused and not broken.leaked
    raising = call(rls, ctx, "org_rows_raising", alice, bob)
    assert raising.error.startswith("P0001") and raising.refused and not raising.failed
    assert leaky_calls(rls, ctx, function(ctx, "org_rows_raising"), [alice, bob], {}, "tenant-leak") == ([], "verified")


def test_an_answer_that_does_not_depend_on_the_id_is_not_the_owners(rls, alice, bob) -> None:
    rls.execute("""
        create function public.org_months(p_org_id uuid) returns table (month int, total bigint)
        language sql stable security definer set search_path = ''
        as $$ select g.m, (select count(*) from public.messages x where x.organization_id = p_org_id
                             and x.organization_id in (select m.organization_id from public.organization_members m
                                                       where m.user_id = (select auth.uid())))
              from generate_series(1, 12) g(m) $$;
        create function public.org_months_open(p_org_id uuid) returns table (month int, total bigint)
        language sql stable security definer set search_path = ''
        as $$ select g.m, (select count(*) from public.messages x where x.organization_id = p_org_id)
              from generate_series(1, 12) g(m) $$;
        create function public.org_zero(p_org_id uuid) returns table (total bigint, flag boolean)
        language sql stable security definer set search_path = '' as $$ select 0::bigint, false $$;
    """)
    ctx = context(rls)
    guarded = call(rls, ctx, "org_months", alice, bob)  # 12 zero months for any id, the owner's too
    assert guarded.rows == 12 and not guarded.same_as_owner and not guarded.leaked
    assert leaky_calls(rls, ctx, function(ctx, "org_months"), [alice, bob], {}, "tenant-leak") == ([], "verified")
    open_ = call(rls, ctx, "org_months_open", alice, bob)  # their count in every month: it depends on their id
    assert open_.rows == 12 and open_.same_as_owner and open_.leaked
    zero = call(rls, ctx, "org_zero", alice, bob)  # a row of 0 and false says nothing
    assert zero.rows == 1 and not zero.leaked


def test_a_count_or_a_flag_equal_to_the_owners_is_a_warning_rows_stay_errors(rls, alice, bob) -> None:
    rls.execute("""
        create function public.org_size(p_org_id uuid) returns bigint
        language sql stable security definer set search_path = ''
        as $$ select count(*) from public.messages where organization_id = p_org_id $$;
        create function public.has_org_role(p_org_id uuid, p_user_id uuid, p_role text) returns boolean
        language sql stable security definer set search_path = ''
        as $$ select exists (select 1 from public.organization_members m
                             where m.organization_id = p_org_id and m.user_id = p_user_id) $$;
        create function public.org_rows(p_org_id uuid) returns setof public.conversations
        language sql stable security definer set search_path = ''
        as $$ select * from public.conversations where organization_id = p_org_id $$;
    """)
    ctx = context(rls)
    for name, kind in (("org_size", "how many"), ("has_org_role", "whether")):
        findings, status = leaky_calls(rls, ctx, function(ctx, name), [alice, bob], {}, "tenant-leak")
        assert status == "LEAK" and [f.severity.name for f in findings] == ["WARN"], name
        assert f"tells the caller {kind}" in findings[0].message
    findings, _ = leaky_calls(rls, ctx, function(ctx, "org_rows"), [alice, bob], {}, "tenant-leak")
    assert [f.severity.name for f in findings] == ["ERROR"]


def test_a_definer_trigger_whose_writes_fail_is_not_proven_and_a_raise_is_a_refusal(rls, alice, bob) -> None:
    from pytest_rlscheck.rules import Check, Measurement, ref
    from pytest_rlscheck.rules import definer_trigger

    for statement in split(JOIN_REQUESTS + """
        create function public.check_request() returns trigger language plpgsql security definer set search_path = '' as $$
        begin
          perform (coalesce(new.file_path, '') || 'x')::int;  -- 22P02: a failure, not the schema refusing
          return new;
        end $$;
        create trigger check_request before insert or update on public.requests
          for each row execute function public.check_request();
    """):
        rls.execute(statement.text)

    def measure():
        ctx = context(rls)
        rel = ctx.catalog.relation("public.requests")
        return definer_trigger.run(Measurement(rls, ctx, Check(definer_trigger.RULE, ref(rel), rel.oid), (alice, bob), {}))

    findings, status = measure()
    assert status == {"definer triggers": "not proven"} and [f.severity.name for f in findings] == ["INFO"]
    assert "22P02" in findings[0].message
    _, attempts = _writes(rls, alice, bob)
    assert attempts and all(a.failed and a.error.startswith("22P02") for a in attempts)
    rls.execute("""
        create or replace function public.check_request() returns trigger language plpgsql security definer
        set search_path = '' as $$ begin raise exception 'requests are closed'; end $$
    """)
    assert measure() == ([], {"definer triggers": "verified"})  # P0001: the trigger refuses


def test_only_columns_of_an_id_type_are_ids_and_a_roots_own_key_stays_fresh(rls) -> None:
    rls.execute("""
        create table public.accounts (id uuid primary key default gen_random_uuid(), created_by uuid references auth.users,
          personal_account boolean not null default false, account_name text);
    """)
    ctx = context(rls)
    rel = ctx.catalog.relation("public.accounts")
    columns = write_columns(rel, TenantKey("id"), set(), set(), ctx.config, ctx.catalog, storage=False)
    assert "personal_account" not in columns  # named like an account id, a boolean
    assert "id" not in columns  # the table's own key: a copy with theirs only collides
    assert columns.get("created_by") == "user"


def test_a_parameter_is_sampled_only_from_a_column_of_its_type(rls, alice, bob) -> None:
    rls.execute("""
        create type public.app_role as enum ('admin', 'user');
        create function public.has_app_role(_user_id uuid, _role public.app_role) returns boolean
          language sql stable security definer set search_path = '' as $$ select false $$;
    """)
    ctx = context(rls)
    fn = next(f for f in ctx.catalog.functions if f.name == "has_app_role")
    args = function_arguments(rls, ctx.catalog, ctx.schemas, fn, {"_user_id": USER_ID}, bob, ctx.config)
    role = next(a for a in args if a.name == "_role")
    # organization_members.role and messages.role are text ('owner', 'user', …): no app_role to sample
    assert not role.source.endswith("of theirs"), role


def test_a_definer_rpc_that_writes_by_id_is_called_with_their_rows_id(rls, alice, bob) -> None:
    """``p_id`` names no table; the UPDATE compares it with conversations.id: it is called with
    one of the other tenant's conversations, and what it changed is the finding."""
    rls.execute("""
        create function public.set_visitor(p_id uuid, p_visitor text) returns void
        language plpgsql security definer set search_path = ''
        as $$ begin update public.conversations c set visitor_id = p_visitor where c.id = p_id; end $$;
    """)
    ctx = SweepContext(Catalog.load(rls.connection, schemas=SCHEMAS, functions=True), SCHEMAS, rls.config,
                       names={ALICE: "alice", BOB: "bob"})
    fn = function(ctx, "set_visitor")
    assert id_parameters(ctx, fn) == {"p_id": ROW_ID}
    findings, status = leaky_calls(rls, ctx, fn, [alice, bob], {}, "tenant-leak")
    assert status == "LEAK" and [f.severity.name for f in findings] == ["ERROR"]
    message = findings[0].message
    assert "called as alice with bob's public.conversations.id (p_id)" in message
    assert f"public.conversations: row(s) of tenant {GLOBEX} updated" in message
    assert "called as anon with bob's" in message
