"""What a function body touches (reads, writes and how the written rows are chosen, dynamic
SQL), read against the worked example's catalog, and definer-exposed judged by it."""

from __future__ import annotations

from conftest import ALICE, BOB

from pytest_rlscheck.catalog import Catalog
from pytest_rlscheck.findings import Severity
from pytest_rlscheck.function_body import Write, touches
from pytest_rlscheck.rules import SweepContext, definer_exposed
from pytest_rlscheck.rules.definer_exposed import callers_readers

SCHEMAS = ("public",)

BODIES = """
create function public.fb_update_by_id(p_id uuid, p_visitor text) returns void
language sql security definer set search_path = ''
as $$ update public.conversations c set visitor_id = p_visitor where c.id = p_id $$;

create function public.fb_delete_all() returns void
language plpgsql security definer set search_path = ''
as $$ begin delete from public.messages; end $$;

create function public.fb_update_own(p_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  me uuid := auth.uid();
  target uuid;
begin
  target := p_id;
  update public.conversations set ended_at = now()
  where id = target and organization_id in (select m.organization_id from public.organization_members m where m.user_id = me);
end
$$;

create function public.fb_create_user(p_email text) returns void
language plpgsql security definer set search_path = ''
as $$ begin insert into auth.users (id, email) values (gen_random_uuid(), p_email); end $$;

create function public.fb_text_only(p_user_id uuid, p_name text) returns text
language plpgsql immutable security definer set search_path = ''
as $$
begin
  -- delete from public.messages where id = p_user_id;
  /* update public.conversations set visitor_id = p_name */
  return format('update public.conversations set visitor_id = %L where id = %s', p_name, p_user_id)
         || extract(epoch from now())::text;
end
$$;

create function public.fb_locks_and_upserts(p_org uuid, p_name text) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  perform 1 from public.organizations o where o.id = p_org for update;
  insert into public.organizations (id, name) values (p_org, p_name)
  on conflict (id) do update set name = excluded.name;
end
$$;

create function public.fb_dynamic(p_table text) returns void
language plpgsql security definer set search_path = ''
as $$ begin execute format('truncate %I', p_table); end $$;

create function public.fb_unqualified(p_id uuid) returns void
language sql security definer set search_path = public
as $$ delete from messages where id = p_id $$;

create function public.fb_unresolved(p_id uuid) returns void
language plpgsql security definer set search_path = ''
as $$ begin delete from messages where id = p_id; end $$;

create function private.fb_helper(p_message uuid) returns void
language sql security definer set search_path = ''
as $$ delete from public.messages where id = p_message $$;
revoke all on function private.fb_helper(uuid) from public;

create function public.fb_through_helper(p_message_id uuid) returns void
language sql security definer set search_path = ''
as $$ select private.fb_helper(p_message_id) $$;

create function public.fb_atomic(p_id uuid) returns void
language sql security definer set search_path = ''
begin atomic
  update public.conversations set ended_at = now() where id = p_id;
end;

create function public.fb_files(p_bucket text, p_name text) returns void
language plpgsql security definer set search_path = ''
as $$ begin delete from storage.objects o where o.bucket_id = p_bucket and o.name = p_name; end $$;

create function public.fb_reads_only(p_org_id uuid) returns bigint
language sql stable security definer set search_path = ''
as $$ select count(*) from public.conversations where organization_id = p_org_id $$;

create function public.fb_signed_in_only(p_id uuid) returns void
language sql security definer set search_path = ''
as $$ delete from public.conversations where id = p_id $$;
revoke all on function public.fb_signed_in_only(uuid) from public, anon;
grant execute on function public.fb_signed_in_only(uuid) to authenticated;
"""


def _catalog(rls) -> Catalog:
    rls.execute(BODIES)
    return Catalog.load(rls.connection, schemas=SCHEMAS, functions=True)


def _touches(catalog: Catalog, name: str):
    fn = next(f for f in catalog.functions if f.name == name)
    return touches(fn, catalog, callers_readers(list(catalog.functions)))


def test_what_bodies_write_and_how_they_choose_the_rows(rls) -> None:
    catalog = _catalog(rls)
    assert _touches(catalog, "fb_update_by_id").writes == (
        Write("UPDATE", "public.conversations", "parameter", False, rls=True, compared=(("id", "p_id"),)),
    )
    assert [(w.command, w.table, w.chosen_by) for w in _touches(catalog, "fb_delete_all").writes] == [
        ("DELETE", "public.messages", "unconstrained")
    ]
    own = _touches(catalog, "fb_update_own").writes
    # the caller through a variable assigned auth.uid(), the id through one assigned the parameter
    assert [(w.chosen_by, w.by_caller, w.compared) for w in own] == [("parameter", True, (("id", "p_id"),))]
    created = _touches(catalog, "fb_create_user").writes
    assert [(w.command, w.table, w.chosen_by, w.platform, w.protected) for w in created] == [
        ("INSERT", "auth.users", "parameter", True, True)
    ]
    files = _touches(catalog, "fb_files").writes
    assert [(w.command, w.table, w.platform) for w in files] == [("DELETE", "storage.objects", True)]
    assert set(files[0].compared) == {("bucket_id", "p_bucket"), ("name", "p_name")}


def test_comments_strings_locks_and_upserts_are_not_writes(rls) -> None:
    catalog = _catalog(rls)
    text_only = _touches(catalog, "fb_text_only")
    assert text_only.nothing and not text_only.dynamic_sql  # format() alone runs no SQL
    upsert = _touches(catalog, "fb_locks_and_upserts")
    assert [(w.command, w.table) for w in upsert.writes] == [("INSERT", "public.organizations")]
    assert upsert.reads == {"public.organizations"}


def test_dynamic_sql_names_and_helpers(rls) -> None:
    catalog = _catalog(rls)
    dynamic = _touches(catalog, "fb_dynamic")
    assert dynamic.dynamic_sql and not dynamic.nothing
    # unqualified names through the function's search_path; with search_path = '' they name nothing
    assert [w.table for w in _touches(catalog, "fb_unqualified").writes] == ["public.messages"]
    assert _touches(catalog, "fb_unresolved").writes == ()
    through = _touches(catalog, "fb_through_helper").writes
    assert [(w.command, w.table, w.chosen_by, w.through) for w in through] == [
        ("DELETE", "public.messages", "parameter", "private.fb_helper")
    ]
    # a BEGIN ATOMIC body: printed back, its bare names are the relations of its tree
    atomic = _touches(catalog, "fb_atomic").writes
    assert [(w.table, w.chosen_by, w.compared) for w in atomic] == [("public.conversations", "parameter", (("id", "p_id"),))]
    assert _touches(catalog, "fb_reads_only").reads == {"public.conversations"}
    assert _touches(catalog, "fb_reads_only").writes == ()


def _findings(rls, names=None):
    catalog = _catalog(rls)
    ctx = SweepContext(catalog, SCHEMAS, names=names or {})
    return {f.object.display.split("(")[0]: f for f in definer_exposed.check(ctx)}


def test_definer_exposed_judges_by_what_the_body_touches(rls) -> None:
    found = _findings(rls)
    assert "public.fb_text_only" not in found  # reads and writes no table: its owner's rights give nothing
    error = {name for name, f in found.items() if f.severity == Severity.ERROR}
    assert error >= {"public.fb_update_by_id", "public.fb_delete_all", "public.fb_create_user", "public.fb_files",
                     "public.fb_through_helper", "public.fb_atomic", "public.fb_signed_in_only"}
    assert found["public.fb_update_own"].severity == Severity.WARN  # it reads the caller: latent
    assert found["public.fb_dynamic"].severity == Severity.WARN and "EXECUTE" in found["public.fb_dynamic"].message
    assert found["public.fb_reads_only"].severity == Severity.ERROR  # a tenant id, never the caller: as before
    assert "Anon and any signed-in user can update any row of public.conversations by id" in found["public.fb_update_by_id"].message
    assert "can delete every row of public.messages" in found["public.fb_delete_all"].message
    assert "can create a user" in found["public.fb_create_user"].message
    assert "can delete any stored file" in found["public.fb_files"].message
    assert "(through private.fb_helper)" in found["public.fb_through_helper"].message
    assert "Any signed-in user can delete any row of public.conversations by id" in found["public.fb_signed_in_only"].message
    assert "anon" not in found["public.fb_signed_in_only"].message.split("may execute it")[1].lower()
    assert "Not measured: the sweep has no principals" in found["public.fb_update_by_id"].message
    assert found["public.fb_update_by_id"].details["writes"] == [
        {"command": "UPDATE", "table": "public.conversations", "rows": "parameter", "by_caller": False}
    ]


def test_with_principals_the_message_says_whether_it_is_called(rls) -> None:
    found = _findings(rls, names={ALICE: "alice", BOB: "bob"})
    assert "tenant-leak calls it" in found["public.fb_update_by_id"].message  # p_id: the row its UPDATE compares
    assert "Not measured: none of its parameters" in found["public.fb_files"].message
    assert "Not measured: none of its parameters" in found["public.fb_create_user"].message


PLATFORM_CALLS = """
create function public.fb_set_secret(p_id uuid, p_secret text) returns void
language plpgsql security definer set search_path = ''
as $$ begin perform vault.update_secret(p_id, p_secret); end $$;

create function public.fb_delete_file(p_bucket text, p_name text) returns void
language plpgsql security definer set search_path = ''
as $$
begin
  perform net.http_delete(
    url := 'https://project.supabase.co/storage/v1/object/' || p_bucket || '/' || p_name,
    headers := jsonb_build_object('Authorization',
      'Bearer eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl'));
end
$$;

create function public.fb_ping(p_url text) returns void
language plpgsql security definer set search_path = ''
as $$ begin perform net.http_get(url := p_url); end $$;
"""


def test_platform_functions_that_write_or_send_requests_are_touches(rls) -> None:
    rls.execute(PLATFORM_CALLS)
    found = _findings(rls)
    secret = found["public.fb_set_secret"]
    # vault.update_secret writes vault.secrets: any caller overwrites any secret by its id
    assert secret.severity is Severity.ERROR and "overwrite any secret in the vault" in secret.message
    deleting = found["public.fb_delete_file"]
    assert deleting.severity is Severity.ERROR and "with a credential written into its body" in deleting.message
    ping = found["public.fb_ping"]  # a request without a credential of its own: worth a look, no more
    assert ping.severity is Severity.WARN and "It sends HTTP requests (http_get) for any caller." in ping.message


def test_requests_of_a_callee_are_its_callers(rls) -> None:
    rls.execute(PLATFORM_CALLS + """
        create function public.fb_delete_from_bucket(p_bucket text, p_name text) returns void
        language plpgsql security definer set search_path = ''
        as $$ begin perform public.fb_delete_file(p_bucket, p_name); end $$;
        revoke execute on function public.fb_delete_file(text, text) from public, anon, authenticated;
    """)
    found = _findings(rls)
    outer = found["public.fb_delete_from_bucket"]  # revoking the inner one leaves this door open
    assert outer.severity is Severity.ERROR and "http_delete through public.fb_delete_file" in outer.message
    assert "public.fb_delete_file" not in found
