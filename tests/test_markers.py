"""Declarative checks: markers run as part of the test, all of them, with the methods' messages."""

from __future__ import annotations

import pytest

from conftest import EXAMPLE, EXAMPLE_PRINCIPALS, SEED

# "--opt=value": pytest would otherwise read the paths as candidates for the rootdir
ARGS = ("--strict-markers", f"--rlscheck-migrations={EXAMPLE / 'migrations'}", f"--rlscheck-seed={EXAMPLE / 'seed.sql'}")
PYPROJECT = EXAMPLE_PRINCIPALS


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *ARGS, *args, timeout=240)


def test_markers_check_a_test_whose_body_is_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.rls_policies("conversations", count=4, commands=["SELECT", "INSERT", "UPDATE", "DELETE"])
        @pytest.mark.rls_isolated("messages", user="alice", other="bob")
        @pytest.mark.rls_isolated("conversations", user={"sub": "22222222-2222-2222-2222-222222222222"},
                                  other="alice", ops=["select", "delete"])
        @pytest.mark.rls_rejects("messages", {"metadata": {"sentiment": 123}},
                                 constraint="messages_metadata_sentiment_valid")
        @pytest.mark.rls_initplan("select * from conversations", as_user="alice")
        def test_claims():
            pass
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)


def test_every_failing_marker_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.rls_policies("messages", count=9)
        @pytest.mark.rls_rejects("messages", {"metadata": {"sentiment": "neutral"}})
        @pytest.mark.rls_initplan("select * from conversations", function="auth.email", as_user="alice")
        @pytest.mark.rls_isolated("conversations", user="alice", other="bob")
        def test_claims():
            pass
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "@pytest.mark.rls_policies('messages', count=9) failed:" in out
    assert "public.messages: expected 9 policies, found 4." in out
    assert "@pytest.mark.rls_rejects(" in out and "expected it to be rejected with 23514 check_violation" in out
    assert "auth.email() does not appear in the plan" in out
    # in the FAILURES section (with CI set, the short summary repeats the whole message)
    failures = out.split("short test summary info")[0]
    assert failures.count(" failed:\n") == 3  # the isolation check passed, the other three did not


def test_rls_user_marker_starts_as_that_user(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.rls_user("22222222-2222-2222-2222-222222222222")
        def test_bob(rls):
            assert rls.scalar("select current_user") == "authenticated"
            assert rls.scalar("select count(*) from conversations") == {SEED.globex.conversations}
            with rls.as_owner():
                assert rls.scalar("select count(*) from conversations") == {SEED.total.conversations}

        @pytest.mark.rls_user("alice")
        def test_alice_by_name(rls):
            assert rls.scalar("select count(*) from messages") == {SEED.acme.messages}

        def test_next_is_the_owner_again(rls):
            assert rls.scalar("select current_user") == "postgres"
        """
    )
    result = _run(pytester, "-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_a_failing_body_is_reported_first(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.rls_policies("messages", count=9)
        def test_body_fails(rls):
            assert 1 == 2
        """
    )
    result = _run(pytester)
    result.assert_outcomes(failed=1)
    assert "assert 1 == 2" in result.stdout.str()
    assert "expected 9 policies" not in result.stdout.str()


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--markers")
    for name in ("rls_fresh_db", "rls_user", "rls_policies", "rls_isolated", "rls_rejects", "rls_initplan"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{name}*"])
