"""A Supabase project that uses Supabase Queues (pgmq; stand-in in SQL, queues really work)."""

from __future__ import annotations

import json

import psycopg
import pytest


def test_the_migration_s_queue_exists(rls):
    assert rls.fetchall("select queue_name, is_partitioned, is_unlogged from pgmq.list_queues()") == [
        ("emails", False, False)
    ]
    assert rls.scalar("select extversion from pg_extension where extname = 'pgmq'") == "1.5.1"
    columns = rls.fetchall(
        "select column_name from information_schema.columns"
        " where table_schema = 'pgmq' and table_name = 'q_emails' order by ordinal_position"
    )
    assert [c for (c,) in columns] == ["msg_id", "read_ct", "enqueued_at", "vt", "message", "headers"]
    # the migration ran as postgres, which does not own the extension (the superuser created
    # it, as supautils does): the stand-in leaves the queue's tables out of it
    joined = ("select count(*) from pg_depend where deptype = 'e' and classid = 'pg_class'::regclass"
              " and objid in (to_regclass('pgmq.q_{0}'), to_regclass('pgmq.a_{0}'))")
    assert rls.scalar(joined.format("emails")) == 0
    # as pgmq 1.5.1 does, a queue its owner creates joins the extension
    rls.execute("set local role none; select pgmq.create('owned'); set local role postgres")
    assert rls.scalar(joined.format("owned")) == 2


def test_send_read_archive_round_trip(rls):
    msg_id = rls.scalar("""select * from pgmq.send('emails', '{"to": "a@example.com"}'::jsonb)""")
    row = rls.fetchone("select msg_id, read_ct, message from pgmq.read('emails', 30, 5)")
    assert row[0] == msg_id and row[1] == 1
    message = row[2] if isinstance(row[2], dict) else json.loads(row[2])
    assert message == {"to": "a@example.com"}
    # hidden for the visibility timeout
    assert rls.fetchall("select msg_id from pgmq.read('emails', 30, 5)") == []
    assert rls.scalar("select pgmq.archive('emails', %s::bigint)", (msg_id,)) is True
    assert rls.scalar("select count(*) from pgmq.q_emails") == 0
    assert rls.fetchone("select msg_id, read_ct from pgmq.a_emails") == (msg_id, 1)
    assert rls.scalar("select pgmq.archive('emails', %s::bigint)", (msg_id,)) is False


def test_batch_delay_pop_delete_and_metrics(rls):
    ids = [i for (i,) in rls.fetchall("""select * from pgmq.send_batch('emails', array['{"n": 1}', '{"n": 2}']::jsonb[])""")]
    assert len(ids) == 2
    later = rls.scalar("""select * from pgmq.send('emails', '{"n": 3}', 3600)""")
    # queue_visible_length compares vt with now(), the transaction's start, as pgmq does
    metrics = rls.fetchone("select queue_name, queue_length, total_messages from pgmq.metrics('emails')")
    assert metrics[0] == "emails" and metrics[1] == 3 and metrics[2] >= 3
    assert rls.scalar("select count(*) from pgmq.metrics_all()") == 1
    assert rls.scalar("select msg_id from pgmq.pop('emails')") == ids[0]
    assert rls.fetchall("select * from pgmq.delete('emails', %s::bigint[])", ([ids[1], later],)) == [(ids[1],), (later,)]
    assert rls.scalar("select pgmq.purge_queue('emails')") == 0


def test_set_vt_makes_a_message_visible_again(rls):
    msg_id = rls.scalar("""select * from pgmq.send('emails', '{}')""")
    assert rls.scalar("select count(*) from pgmq.read('emails', 60, 1)") == 1
    rls.execute("select * from pgmq.set_vt('emails', %s, 0)", (msg_id,))
    assert rls.fetchone("select msg_id, read_ct from pgmq.read('emails', 60, 1)") == (msg_id, 2)


def test_queues_can_be_created_and_dropped(rls):
    rls.execute("select pgmq.create_unlogged('scratch')")
    assert rls.scalar("select relpersistence from pg_class where oid = 'pgmq.q_scratch'::regclass") == "u"
    assert rls.scalar("select pgmq.drop_queue('scratch')") is True
    assert rls.scalar("select to_regclass('pgmq.q_scratch')") is None
    with pytest.raises(psycopg.errors.RaiseException, match="invalid characters"):
        rls.execute("select pgmq.create('bad;name')")


def test_api_roles_cannot_reach_pgmq(rls):
    for role in ("anon", "authenticated"):
        assert not rls.scalar("select has_schema_privilege(%s, 'pgmq', 'usage')", (role,))
    with rls.as_user("11111111-1111-1111-1111-111111111111"), pytest.raises(psycopg.errors.InsufficientPrivilege):
        rls.execute("select * from pgmq.read('emails', 30, 1)")
