"""The policy model: facts read from PostgreSQL's analysed trees, on a real server."""

from __future__ import annotations

import pytest

from pytest_rlscheck.catalog import Catalog
from pytest_rlscheck.nodetree import NodeTreeError, parse, walk
from pytest_rlscheck.policy_model import Caller, oids_in, oids_in_text, unwrapped_spans

TABLE = """
create table public.pm (
  id bigint generated always as identity primary key,
  owner_id uuid, org_id uuid, status text, payload jsonb
);
alter table public.pm enable row level security;
create table public.pm_members (user_id uuid, org_id uuid);
"""


def facts(rls, using: str | None = None, check: str | None = None, command: str = "select"):
    """The facts of one policy created on public.pm with these expressions."""
    rls.execute(TABLE)
    rls.execute(
        f"create policy p on public.pm for {command} to authenticated"
        + (f" using ({using})" if using else "")
        + (f" with check ({check})" if check else "")
    )
    (policy,) = rls.relation("public.pm").policies
    return policy


def test_the_node_tree_reader_reads_strings_datums_lists_and_nulls() -> None:
    tree = parse('{OPEXPR :opno 98 :args ({CONST :constvalue 7 [ 28 0 0 0 97 32 98 ]} {VAR :varno 1}) :name "a\\ b" :x <>}')
    assert tree.type == "OPEXPR" and tree["opno"] == 98 and tree["x"] is None and tree["name"] == "a b"
    const, var = tree["args"]
    assert const["constvalue"] == b"\x1c\x00\x00\x00a b" and var["varno"] == 1
    assert [n.type for n in walk(tree)] == ["OPEXPR", "CONST", "VAR"]
    assert parse("(i 1 2 3)") == [1, 2, 3]
    with pytest.raises(NodeTreeError):
        parse("{OPEXPR :opno 98")


def test_every_tree_the_catalog_holds_parses(rls) -> None:
    count = 0
    for query in (
        "select polqual::text from pg_policy union all select polwithcheck::text from pg_policy",
        "select proargdefaults::text from pg_proc union all select prosqlbody::text from pg_proc",
        "select conbin::text from pg_constraint union all select adbin::text from pg_attrdef",
        "select ev_action::text from pg_rewrite",
    ):
        for (text,) in rls.fetchall(query):
            if text:
                assert oids_in_text(text) == oids_in(parse(text))  # the one-scan reading agrees
                count += 1
    assert count > 200  # the platform's and the example's views, defaults, checks and policies


def test_a_bare_call_runs_per_row_and_a_select_wrapped_one_once(rls) -> None:
    bare = facts(rls, "owner_id = auth.uid()").using_facts
    assert bare.calls_unwrapped("auth.uid")
    rls.execute("alter policy p on public.pm using (owner_id = (select auth.uid()))")
    wrapped = rls.relation("public.pm").policies[0].using_facts
    assert not wrapped.calls_unwrapped("auth.uid") and [c.function for c in wrapped.calls] == ["auth.uid"]


def test_a_call_inside_a_subquery_with_from_runs_per_row_of_it(rls) -> None:
    policy = facts(rls, "org_id in (select m.org_id from public.pm_members m where m.user_id = auth.uid())")
    assert policy.using_facts.calls_unwrapped("auth.uid")
    assert policy.using_facts.set_columns == {"org_id"}
    assert not policy.using_facts.compared_with_user()  # m.user_id is the member's, not the row's


def test_a_call_inside_a_wrapped_function_call_runs_once(rls) -> None:
    rls.execute("create function public.pm_orgs(u uuid) returns setof uuid language sql stable as 'select null::uuid'")
    policy = facts(rls, "org_id in (select public.pm_orgs((select auth.uid())))")
    assert not policy.using_facts.calls_unwrapped("auth.uid", "public.pm_orgs")
    assert policy.using_facts.filter_columns() == {"org_id"}


def test_calls_with_the_rows_columns_are_told_apart(rls) -> None:
    rls.execute("create function public.pm_member(o uuid) returns boolean language sql stable as 'select true'")
    policy = facts(rls, "public.pm_member(org_id) and public.pm_member((select auth.uid()))")
    by_arguments = {c.row_arguments for c in policy.using_facts.unwrapped("public.pm_member")}
    assert by_arguments == {True, False}
    by_columns = {c.row_columns for c in policy.using_facts.unwrapped("public.pm_member")}
    assert by_columns == {("org_id",), ()}  # the row's own column; auth.uid() is none of the row's


def test_columns_compared_with_the_caller_through_casts_and_claims(rls) -> None:
    policy = facts(rls, "owner_id::text = (auth.jwt() ->> 'sub') or (select auth.uid()) = org_id")
    using = policy.using_facts
    assert using.compared_with_user() == {"owner_id", "org_id"}
    assert Caller("auth.jwt", ("sub",)) in using.caller_columns["owner_id"]
    claims = facts_again(rls, "owner_id = (current_setting('request.jwt.claims', true)::json ->> 'sub')::uuid")
    assert claims.compared_with_user() == {"owner_id"}
    role = facts_again(rls, "status = (auth.jwt() ->> 'role')")
    assert role.caller_columns and not role.compared_with_user()  # compared with the caller, not their id


def facts_again(rls, using: str):
    rls.execute(f"alter policy p on public.pm using ({using})")
    return rls.relation("public.pm").policies[0].using_facts


def test_a_literal_list_is_no_set_of_tenants_and_a_set_is(rls) -> None:
    policy = facts(rls, "status = any (array['a', 'b']) and status in ('c', 'd')")
    assert not policy.using_facts.filter_columns()
    rls.execute("create function public.pm_ids() returns uuid[] language sql stable as 'select array[]::uuid[]'")
    assert facts_again(rls, "org_id = any (public.pm_ids())").set_columns == {"org_id"}


@pytest.mark.parametrize(
    ("using", "constant", "every_user"),
    [
        ("true", True, False),
        ("auth.role() = 'authenticated'", False, True),
        ("'authenticated' = (select auth.role())", False, True),
        ("(select auth.uid()) is not null", False, True),
        ("((select auth.jwt()) ->> 'role') = 'authenticated'", False, True),
        ("auth.role() <> 'anon'", False, True),
        ("auth.uid() <> null", False, True),
        ("owner_id = (select auth.uid())", False, False),
        ("auth.role() = 'service_role'", False, False),
        ("status = 'authenticated'", False, False),
        ("owner_id is not null", False, False),
        ("false", False, False),
    ],
)
def test_conditions_every_signed_in_user_meets(rls, using: str, constant: bool, every_user: bool) -> None:
    policy = facts(rls, using)
    assert (policy.using_facts.constant_true, policy.using_facts.every_user) == (constant, every_user)


def test_user_metadata_is_seen_as_a_key_and_as_a_column(rls) -> None:
    policy = facts(rls, "((select auth.jwt()) -> 'user_metadata' ->> 'role') = 'admin'")
    assert policy.using_facts.reads_user_metadata
    column = facts_again(
        rls, "exists (select 1 from auth.users u where u.id = (select auth.uid()) and u.raw_user_meta_data ? 'admin')"
    )
    assert column.reads_user_metadata
    assert not facts_again(rls, "((select auth.jwt()) -> 'app_metadata' ->> 'role') = 'admin'").reads_user_metadata
    # a column of the same name on the policy's own row is not the user's metadata
    assert not facts_again(rls, "status = 'user_metadata_x'").reads_user_metadata


def test_a_comment_marker_inside_a_string_hides_no_call(rls) -> None:
    rls.execute(
        """
        create function public.pm_tagged() returns text language plpgsql stable as $$
        begin
          return '--' || auth.uid()::text;  -- a comment: auth.jwt() here is not a call
        end $$;
        create function public.pm_commented() returns text language plpgsql stable as $$
        begin
          -- return auth.uid()::text;
          return 'auth.uid()';
        end $$;
        """
    )
    catalog = Catalog.load(rls.connection, schemas=["public"], functions=True)
    by_name = {f.name: f for f in catalog.functions}
    assert by_name["pm_tagged"].reads_caller() and "uid" in by_name["pm_tagged"].calls()
    assert "jwt" not in by_name["pm_tagged"].calls()
    assert not by_name["pm_commented"].reads_caller()


def test_sql_standard_bodies_and_defaults_are_read_from_their_trees(rls) -> None:
    if rls.connection.info.server_version < 140000:
        pytest.fail("the servers tested are 15+")
    rls.execute(
        """
        create function public.pm_std(viewer uuid default auth.uid(), label text default 'auth.uid(), x')
        returns boolean language sql stable
        begin atomic
          select viewer = (select auth.uid());
        end;
        create function public.pm_claims() returns text language sql stable
        return current_setting('request.jwt.claims', true);
        """
    )
    catalog = Catalog.load(rls.connection, schemas=["public"], functions=True)
    by_name = {f.name: f for f in catalog.functions}
    std = by_name["pm_std"]
    assert std.facts.from_tree and std.reads_caller() and std.calls() >= {"uid"}
    assert std.caller_defaults == ("viewer",)  # not label: its default is a string that reads like a call
    assert by_name["pm_claims"].reads_caller()


def test_the_fix_wraps_exactly_the_calls_that_run_per_row() -> None:
    text = "((owner_id = auth.uid()) OR (org_id IN ( SELECT auth.uid() AS uid)) OR (x = ( SELECT (auth.uid())::text)))"
    spans = unwrapped_spans(text, "auth.uid")
    assert [text[s:e] for s, e in spans] == ["auth.uid()"] and spans[0][0] == text.index("auth.uid")
    assert unwrapped_spans("f(\"auth\".uid(), 'auth.uid()')", "auth.uid") == [(2, 14)]
    assert unwrapped_spans("other.uid()", "auth.uid") == []
    assert unwrapped_spans("(user_id = current_uid())", "public.current_uid") == [(11, 24)]  # search_path: no schema


def test_an_expression_over_one_column_compared_with_the_caller_is_a_key(rls) -> None:
    # storage's convention: the first folder of the path is the user's id (or their tenant's)
    rls.execute("create function public.first_folder(p text) returns text[] language sql immutable "
                "as $$ select string_to_array(p, '/') $$")
    by_user = facts(rls, "(public.first_folder(status))[1] = (select auth.uid())::text").using_facts
    assert by_user.expressions_compared_with_user() == {'("public"."first_folder"("status"))[1]'}
    assert not by_user.caller_columns
    rls.execute("drop policy p on public.pm")
    rls.execute("create policy p on public.pm for select to authenticated using "
                "(split_part(status, '/', 1) in (select m.org_id::text from public.pm_members m where m.user_id = auth.uid()))")
    (policy,) = rls.relation("public.pm").policies
    assert policy.using_facts.set_expressions == {"\"pg_catalog\".\"split_part\"(\"status\", '/', 1)"}
    # an expression over two columns, or over a subquery, is no key
    rls.execute("drop policy p on public.pm")
    rls.execute("create policy p on public.pm for select to authenticated using "
                "(concat(status, org_id) = (select auth.uid())::text)")
    (policy,) = rls.relation("public.pm").policies
    assert not policy.using_facts.caller_expressions
