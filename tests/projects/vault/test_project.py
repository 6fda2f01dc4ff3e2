"""A project that keeps an API key in Supabase Vault (supabase_vault stand-in)."""

import psycopg
import pytest

ADMIN = "11111111-1111-1111-1111-111111111111"
USER = "22222222-2222-2222-2222-222222222222"


def test_secret_round_trips_and_is_not_stored_in_plain(rls):
    assert rls.scalar("select decrypted_secret from vault.decrypted_secrets where name = 'stripe_api_key'") == (
        "sk_test_rlscheck_123"
    )
    stored = rls.scalar("select secret from vault.secrets where name = 'stripe_api_key'")
    assert stored and "sk_test_rlscheck_123" not in stored


def test_update_secret(rls):
    rls.execute(
        "select vault.update_secret(id, new_secret := 'sk_test_rotated') from vault.secrets where name = 'stripe_api_key'"
    )
    assert rls.scalar("select decrypted_secret from vault.decrypted_secrets where name = 'stripe_api_key'") == (
        "sk_test_rotated"
    )


def test_admin_reads_key_through_definer_function(rls):
    with rls.as_user(ADMIN):
        assert rls.scalar("select public.stripe_api_key()") == "sk_test_rlscheck_123"


def test_other_user_is_refused_by_the_function(rls):
    with rls.as_user(USER), pytest.raises(psycopg.errors.InsufficientPrivilege, match="admins only"):
        rls.execute("select public.stripe_api_key()")


@pytest.mark.parametrize("relation", ["vault.secrets", "vault.decrypted_secrets"])
def test_authenticated_cannot_read_vault_directly(rls, relation):
    with rls.as_user(ADMIN), pytest.raises(psycopg.errors.InsufficientPrivilege):
        rls.execute(f"select * from {relation}")


def test_api_roles_cannot_create_secrets(rls):
    for act in (rls.as_anon, rls.as_service_role):
        with act(), pytest.raises(psycopg.errors.InsufficientPrivilege):
            rls.execute("select vault.create_secret('x')")
