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
    assert [(f["rule"], f["severity"]) for f in leaks] == [("tenant-leak", "error")] * 2, output
    assert all("delete: their rows were deleted" in f["message"] for f in leaks)
    assert {t["table"]: t["isolation"] for t in data["tables"]}["storage.objects"] == "LEAK"
