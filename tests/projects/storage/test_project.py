import psycopg
import pytest


ALICE = "11111111-1111-1111-1111-111111111111"
BOB = "22222222-2222-2222-2222-222222222222"


def test_a_user_uploads_into_their_own_folder_only(rls):
    with rls.as_user(ALICE):
        rls.execute(
            "insert into storage.objects (bucket_id, name, owner) values ('avatars', %s, %s)",
            (f"{ALICE}/me.png", ALICE),
        )
        with pytest.raises(Exception, match="row-level security"):
            with rls.safely():
                rls.execute(
                    "insert into storage.objects (bucket_id, name, owner) values ('avatars', %s, %s)",
                    (f"{BOB}/me.png", ALICE),
                )


def test_another_user_cannot_delete_an_avatar(rls):
    with rls.as_user(ALICE):
        rls.execute("insert into storage.objects (bucket_id, name, owner) values ('avatars', %s, %s)", (f"{ALICE}/a.png", ALICE))
    with rls.as_user(BOB):
        assert rls.scalar("select count(*) from storage.objects") == 1  # the bucket is public
        # the API refuses a DELETE without a WHERE (safeupdate), and with one Bob's policy holds
        with pytest.raises(psycopg.errors.CardinalityViolation, match="DELETE requires a WHERE clause"):
            rls.execute("delete from storage.objects")
        assert rls.execute("delete from storage.objects where bucket_id = 'avatars'").rowcount == 0
    assert rls.scalar("select count(*) from storage.objects") == 1
