"""Storage through the isolation probes: storage.objects policies the project writes are
checked like its own tables', with objects synthesized per user and bucket."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

STORAGE = Path(__file__).parent / "projects" / "storage"


def _run(pytester: pytest.Pytester, migration: str = "") -> tuple[dict, str]:
    shutil.copytree(STORAGE, pytester.path, dirs_exist_ok=True)
    if migration:
        (pytester.path / "supabase" / "migrations" / "20240401000000_change.sql").write_text(migration)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rlscheck", "-m", "rlscheck",
                                           "--rlscheck-report=out.json", timeout=300)
    return json.loads((pytester.path / "out.json").read_text()), result.stdout.str()


def test_storage_policies_are_verified_on_synthesized_objects(pytester: pytest.Pytester) -> None:
    data, output = _run(pytester)
    isolation = {t["table"]: t["isolation"] for t in data["tables"]}
    assert isolation["storage.objects"].startswith("verified"), output
    assert data["synthesized"]["rows"]["storage.objects"] == 2  # one per user, in the project's bucket
    assert not [f for f in data["findings"] if f["object"] == "storage.objects"], data["findings"]


def test_deleting_another_users_object_is_a_leak(pytester: pytest.Pytester) -> None:
    data, output = _run(pytester, """
        drop policy "users delete their avatars" on storage.objects;
        create policy "users delete avatars" on storage.objects for delete to authenticated
          using (bucket_id = 'avatars');
    """)
    leaks = [f for f in data["findings"] if f["object"] == "storage.objects"]
    # one finding, with the run of each user
    assert [(f["rule"], f["severity"]) for f in leaks] == [("tenant-leak", "error")], output
    assert leaks[0]["message"].count("delete: their rows were deleted") == 2
    assert leaks[0]["message"].startswith("Any signed-in user can delete other users' rows of storage.objects.")
    assert {t["table"]: t["isolation"] for t in data["tables"]}["storage.objects"] == "LEAK (delete as alice/bob)"


def test_reading_another_users_file_in_a_private_bucket_is_a_leak(pytester: pytest.Pytester) -> None:
    # the project's public avatars bucket is readable by anyone on purpose; a private one is not
    data, output = _run(pytester, """
        insert into storage.buckets (id, name, public) values ('docs', 'docs', false);
        create policy "signed-in users read docs" on storage.objects for select to authenticated
          using (bucket_id = 'docs');
        create policy "users upload docs" on storage.objects for insert to authenticated
          with check (bucket_id = 'docs' and (storage.foldername(name))[1] = (select auth.uid())::text);
    """)
    assert data["synthesized"]["rows"]["storage.objects"] == 4  # each user's file in each bucket
    leaks = [f for f in data["findings"] if f["object"] == "storage.objects"]
    assert [(f["rule"], f["severity"]) for f in leaks] == [("tenant-leak", "error")], output
    assert leaks[0]["message"].count("select: the user sees 1 of") == 2, leaks  # as alice, and as bob


def test_a_public_buckets_files_read_by_anyone_are_no_leak_whatever_the_key(pytester: pytest.Pytester) -> None:
    # a helper over the file's name (not a tenant id) does not make the name the tenant key, and
    # whatever the key, a public bucket's files are anyone's to read: only private ones are judged
    data, output = _run(pytester, """
        create function public.not_hidden(path text) returns boolean language sql stable
          as $$ select path not like '%/hidden/%' $$;
        drop policy "anyone reads avatars" on storage.objects;
        create policy "anyone reads shown avatars" on storage.objects for select
          using (bucket_id = 'avatars' and public.not_hidden(name));
    """)
    found = [(f["rule"], f["severity"]) for f in data["findings"] if f["object"] == "storage.objects"]
    assert not [f for f in found if f[1] != "info"], output
    assert {t["table"]: t["isolation"] for t in data["tables"]}["storage.objects"].startswith("verified"), output
