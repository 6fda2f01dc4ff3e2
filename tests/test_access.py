"""The access matrix and its snapshot: who can do what, measured, and every change a diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SEED, example_project
from pytest_rlscheck.access import Cell, RelationAccess, Snapshot, SnapshotError, changed_cells

SNAPSHOT = Path("supabase/rlscheck-access.json")
WIDEN_SELECT = """
create policy "every member reads every message" on public.messages for select to authenticated using (true);
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rlscheck", "-m", "rlscheck", *args, timeout=300)


def _report(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:
    result = _run(pytester, "--rlscheck-report=report.json", *args)
    return result, json.loads((pytester.path / "report.json").read_text())


def test_snapshot_written_then_clean_and_unmoved_by_seed_changes(pytester: pytest.Pytester) -> None:
    example_project(pytester)
    written = _run(pytester, "--rlscheck-snapshot-update")
    assert written.ret == 0, written.stdout.str()
    written.stdout.fnmatch_lines(["rlscheck: access snapshot written to supabase/rlscheck-access.json (6 relations, 6 changed)"])
    path = pytester.path / SNAPSHOT
    first = path.read_text()
    data = json.loads(first)
    messages = data["relations"]["public.messages"]["access"]
    assert messages["alice"]["select"] == messages["bob"]["select"] == "own rows only"
    assert messages["anon"]["select"] == "refused (policy)"  # no policy admits anon
    assert messages["service_role"]["delete"] == "all rows"  # it bypasses RLS
    assert data["relations"]["public.conversations_with_stats"]["kind"] == "view"

    again = _run(pytester, "-rA")
    assert again.ret == 0, again.stdout.str()
    assert "PASSED rlscheck::public.messages::access-changed" in again.stdout.str()
    assert path.read_text() == first

    # other rows, other counts, the same access: the snapshot stays as it was
    seed = pytester.path / "supabase" / "seed.sql"
    seed.write_text(seed.read_text() + "\ndelete from public.messages where ctid in "
                    "(select ctid from public.messages order by id limit 1000);\n")
    reseeded = _run(pytester, "--rlscheck-snapshot-update")
    assert reseeded.ret == 0, reseeded.stdout.str()
    reseeded.stdout.fnmatch_lines(["rlscheck: access snapshot written to * (6 relations, 0 changed)"])
    assert path.read_text() == first  # byte for byte: sorted, categories only


def test_a_widened_select_policy_fails_with_exactly_the_changed_cells(pytester: pytest.Pytester) -> None:
    example_project(pytester)
    assert _run(pytester, "--rlscheck-snapshot-update", "-k", "access-changed").ret == 0
    migration = pytester.path / "supabase" / "migrations" / "20250101000000_widen.sql"
    migration.write_text(WIDEN_SELECT)

    result, report = _report(pytester, "-k", "access-changed")
    assert result.ret == 1
    expected = ["alice · select public.messages: own rows only → others' rows",
                "bob · select public.messages: own rows only → others' rows"]
    assert report["access_changes"] == {"public.messages": expected}
    result.stdout.fnmatch_lines(["*FAILED rlscheck::public.messages::access-changed*"])
    out = result.stdout.str()
    assert "Who can do what on public.messages differs from supabase/rlscheck-access.json" in out
    assert all(line in out for line in expected)
    assert "1 failed, 5 passed" in out  # the other relations' access did not change

    accepted = _run(pytester, "--rlscheck-snapshot-update", "-k", "access-changed")
    assert accepted.ret == 0, accepted.stdout.str()
    accepted.stdout.fnmatch_lines(["rlscheck: access snapshot written to * (6 relations, 1 changed)"])
    messages = json.loads((pytester.path / SNAPSHOT).read_text())["relations"]["public.messages"]["access"]
    assert messages["alice"]["select"] == "others' rows"
    assert _run(pytester, "-k", "access-changed").ret == 0  # accepted: clean again


def test_the_matrix_in_the_reports_with_the_counts_behind_it(pytester: pytest.Pytester) -> None:
    example_project(pytester)
    result = _run(pytester, "--rlscheck-report=report.json", "--rlscheck-report=report.md")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["access (S I U D M X: *", "public.messages * alice/bob o  o~ o~ o~ s  o~   anon x* *"])
    report = json.loads((pytester.path / "report.json").read_text())
    rows = {row["relation"]: row for row in report["access"]}
    assert set(rows) == {"public.organizations", "public.organization_members", "public.domains",
                         "public.conversations", "public.messages", "public.conversations_with_stats"}
    select = rows["public.messages"]["cells"]["alice"]["select"]
    # alice (acme) read every one of her tenant's messages and none of globex's
    assert select["measured"] == "yes"
    assert select["rows"] == {"own_reached": SEED.acme.messages, "others_reached": 0, "others_total": SEED.globex.messages}
    assert rows["public.messages"]["cells"]["anon"]["select"]["measured"] == "no"  # no policy admits anon: not tried
    # the insert aimed at globex's rows was refused; that her own go in is read from the policies
    assert rows["public.messages"]["cells"]["alice"]["insert"]["measured"] == "partly"
    markdown = (pytester.path / "report.md").read_text()
    assert "### Who can do what" in markdown
    assert "| `public.messages` | alice | own | own\\~ | own\\~ | own\\~ | ✗ schema | own\\~ |" in markdown


def test_removed_relations_fail_and_a_broken_snapshot_is_refused(pytester: pytest.Pytester) -> None:
    example_project(pytester)
    path = pytester.path / SNAPSHOT
    path.write_text(Snapshot({"public.gone": ("table", {"anon": {"select": "all rows"}})}).to_json())
    result, report = _report(pytester, "-k", "access-changed")
    assert result.ret == 1
    assert report["access_changes"]["public.gone"] == [
        "public.gone: removed (in the snapshot, no longer in the schema)",
        "anon · select public.gone: all rows → absent",
    ]
    assert report["access_changes"]["public.messages"][0] == "public.messages: new (not in the snapshot)"

    path.write_text("{not json")
    broken = _run(pytester)
    assert broken.ret == 4  # a usage error, before anything runs
    broken.stderr.fnmatch_lines(["*rlscheck-access.json: not JSON*--rlscheck-snapshot-update*"])


def test_snapshot_text_is_deterministic_and_diffs_name_each_cell() -> None:
    one = RelationAccess("public.t", "table", {"bob": {"select": Cell("own rows only")}, "alice": {"select": Cell("own rows only")}})
    two = RelationAccess("public.t", "table", {"alice": {"select": Cell("own rows only", "no", "x", {"own_reached": 3})},
                                                "bob": {"select": Cell("own rows only")}})
    assert Snapshot.of([one]).to_json() == Snapshot.of([two]).to_json()  # counts and order are not access
    assert Snapshot.from_json(Snapshot.of([one]).to_json(), "f").relations == Snapshot.of([two]).relations
    assert changed_cells("public.t", {"anon": {"select": "refused (policy)", "insert": "refused (policy)"}},
                         {"anon": {"select": "all rows", "insert": "refused (policy)"}}) == [
        "anon · select public.t: refused (policy) → all rows"]
    with pytest.raises(SnapshotError, match="not an rlscheck access snapshot"):
        Snapshot.from_json('{"relations": {}}', "f.json")


def _git(pytester: pytest.Pytester, *args: str) -> None:
    import subprocess

    subprocess.run(["git", "-c", "user.name=rlscheck", "-c", "user.email=rlscheck@example.test", *args],
                   cwd=pytester.path, check=True, capture_output=True)


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one process", "xdist"])
def test_compare_with_a_git_revision_names_what_the_branch_changes(pytester: pytest.Pytester, workers: tuple) -> None:
    example_project(pytester)
    _git(pytester, "init", "-q")
    _git(pytester, "add", "-A")
    _git(pytester, "commit", "-qm", "the example")
    (pytester.path / "supabase" / "migrations" / "20250101000000_widen.sql").write_text(WIDEN_SELECT)
    _git(pytester, "add", "-A")
    _git(pytester, "commit", "-qm", "widen the reads of messages")

    result, report = _report(pytester, "--rlscheck-compare=HEAD~1", "-k", "access-changed", *workers)
    assert result.ret == 1, result.stdout.str()
    assert report["access_changes"] == {"public.messages": [
        "alice · select public.messages: own rows only → others' rows",
        "bob · select public.messages: own rows only → others' rows"]}
    out = result.stdout.str()
    assert "Who can do what on public.messages differs from git HEAD~1" in out
    assert "20250101000000_widen.sql:2" in out  # where the policy that widened it was created
    assert not (pytester.path / SNAPSHOT).exists()  # a comparison writes nothing
    assert _run(pytester, "--rlscheck-compare=HEAD", "-k", "access-changed", *workers).ret == 0  # no change: clean


FUNCTIONS = """
create function public.my_conversations() returns setof public.conversations
language sql stable security invoker as $$ select * from public.conversations $$;
create function public.conversation_messages(p_conversation_id uuid) returns bigint
language sql stable security invoker as $$ select count(*) from public.messages where conversation_id = p_conversation_id $$;
"""


def test_functions_have_rows_of_their_own_named_by_the_function(pytester: pytest.Pytester) -> None:
    example_project(pytester, FUNCTIONS)
    written = _run(pytester, "--rlscheck-snapshot-update")
    assert written.ret == 0, written.stdout.str()
    relations = json.loads((pytester.path / SNAPSHOT).read_text())["relations"]
    functions = {name: entry for name, entry in relations.items() if entry["kind"] == "function"}
    assert set(functions) == {"public.my_conversations()", "public.conversation_messages(p_conversation_id uuid)"}
    for entry in functions.values():
        assert set(entry["access"]) == {"alice", "bob", "anon", "service_role"}
        assert set(entry["access"]["alice"]) == {"execute"}
    assert functions["public.my_conversations()"]["access"]["alice"]["execute"] == "own rows only"  # measured
    called = functions["public.conversation_messages(p_conversation_id uuid)"]["access"]
    assert called["alice"]["execute"] == "own rows only"  # called with bob's ids: nothing of his
    assert called["anon"]["execute"] == "allowed"  # anon has no tenant to call its own
    again = _run(pytester, "-k", "access-changed")
    assert again.ret == 0, again.stdout.str()  # each function compared with its own entry: clean
