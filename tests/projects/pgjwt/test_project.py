"""A project that signs and verifies invitation tokens with pgjwt (pgjwt/pgcrypto stand-ins)."""

import base64
import hashlib
import hmac
import json

import psycopg
import pytest

OWNER = "11111111-1111-1111-1111-111111111111"
GUEST = "22222222-2222-2222-2222-222222222222"
TEAM = "aaaaaaaa-0000-0000-0000-000000000001"
SECRET = "team-invite-signing-secret"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _python_jwt(payload_text: str, secret: str, alg: str = "HS256") -> str:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = _b64(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode()) + "." + _b64(
        payload_text.encode()
    )
    return signing_input + "." + _b64(hmac.new(secret.encode(), signing_input.encode(), digest).digest())


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_sign_matches_an_independent_implementation(rls, alg):
    payload = '{"sub":"1234567890","name":"Jane","iat":1516239022}'
    token = rls.scalar("select extensions.sign(%s::json, %s, %s)", (payload, SECRET, alg))
    assert token == _python_jwt(payload, SECRET, alg)
    assert rls.fetchone("select header::text, valid from extensions.verify(%s, %s, %s)", (token, SECRET, alg)) == (
        json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")),
        True,
    )


def test_expired_and_not_yet_valid_tokens_are_invalid(rls):
    assert rls.scalar("select valid from extensions.verify(%s, %s)", (_python_jwt('{"exp":1000}', SECRET), SECRET)) is False
    assert rls.scalar(
        "select valid from extensions.verify(%s, %s)", (_python_jwt('{"nbf":99999999999}', SECRET), SECRET)
    ) is False


def test_invite_round_trip(rls):
    with rls.as_user(OWNER):
        token = rls.scalar("select public.create_invite(%s)", (TEAM,))
    with rls.as_user(GUEST):
        assert str(rls.scalar("select public.accept_invite(%s)", (token,))) == TEAM
        assert rls.scalar("select count(*) from public.members") == 1


def test_tampered_token_is_rejected(rls):
    with rls.as_user(OWNER):
        token = rls.scalar("select public.create_invite(%s)", (TEAM,))
    header, payload, signature = token.split(".")
    forged_payload = _b64(json.dumps({"team": TEAM, "exp": 99999999999}).encode())
    for forged in (f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.{signature[:-2]}AA"):
        assert rls.scalar("select valid from extensions.verify(%s, %s)", (forged, SECRET)) is False
        with rls.as_user(GUEST), pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid invitation"):
            rls.execute("select public.accept_invite(%s)", (forged,))


def test_only_the_owner_mints_invites(rls):
    with rls.as_user(GUEST), pytest.raises(psycopg.errors.InsufficientPrivilege):
        rls.execute("select public.create_invite(%s)", (TEAM,))
