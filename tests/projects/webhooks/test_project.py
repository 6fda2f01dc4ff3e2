USER = "11111111-1111-1111-1111-111111111111"


def test_a_signup_posts_the_row_to_the_edge_function_and_records_the_hook(rls):
    with rls.as_user(USER):
        rls.execute("insert into public.signups (plan) values ('pro')")
    url, body = rls.fetchone(
        "select q.url, convert_from(q.body, 'utf8')::jsonb from net.http_request_queue q"
        " join supabase_functions.hooks h on h.request_id = q.id where h.hook_name = 'signup-webhook'"
    )
    assert url == "https://abcdefghijklmnopqrst.supabase.co/functions/v1/welcome"
    assert body["type"] == "INSERT" and body["table"] == "signups" and body["record"]["plan"] == "pro"
    assert body["old_record"] is None


def test_a_webhook_without_a_url_fails_as_on_supabase(rls):
    rls.execute("create table public.t (id int)")
    rls.execute("create trigger broken after insert on public.t for each row execute function supabase_functions.http_request()")
    import pytest
    with pytest.raises(Exception, match="url argument is missing"):
        rls.execute("insert into public.t values (1)")
