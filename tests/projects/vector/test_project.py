ALICE = "11111111-1111-1111-1111-111111111111"


def test_the_hnsw_index_is_a_real_pgvector_index(rls):
    assert rls.scalar(
        "select am.amname from pg_class c join pg_am am on am.oid = c.relam where c.relname = 'documents_embedding_idx'"
    ) == "hnsw"
    assert rls.scalar("select extversion from pg_extension where extname = 'vector'")


def test_match_documents_ranks_by_cosine_distance_within_the_users_rows(rls):
    with rls.as_user(ALICE):
        rows = rls.fetchall("select content from public.match_documents('[1,0,0]', 5)")
    assert [r[0] for r in rows] == ["alice: cats", "alice: dogs"]  # bob's nearer row is not theirs
