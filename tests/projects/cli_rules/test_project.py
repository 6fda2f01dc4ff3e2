def test_the_stray_file_was_skipped_and_the_header_did_not_carry_over(rls):
    assert rls.scalar("select to_regclass('public.todos_open') is not null")
    user = "11111111-1111-1111-1111-111111111111"
    with rls.as_user(user):
        rls.execute("insert into public.todos (title) values ('write tests')")
        assert rls.fetchall("select title from public.todos_open") == [("write tests",)]
