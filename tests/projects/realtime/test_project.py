def test_messages_are_published_to_realtime(rls):
    assert rls.fetchall(
        "select schemaname, tablename from pg_publication_tables where pubname = 'supabase_realtime'"
    ) == [("public", "messages")]


def test_an_author_writes_as_themselves(rls):
    user = "11111111-1111-1111-1111-111111111111"
    with rls.as_user(user):
        rls.execute("insert into public.messages (body) values ('hi')")
        assert rls.scalar("select author_id::text from public.messages") == user
