"""Hostile tokens and brute force are refused: alg none, wrong algorithm, expired, tampered, foreign keys,
key confusion, revoked devices, and credential guessing beyond the rate limit."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from supabase_auth.errors import AuthApiError

from tests.auth.conftest import PASSWORD, auth_metric
from tuskbase.caller import identify
from tuskbase.tokens import ClaimsCache, TokenError


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict, claims: dict, signature: bytes = b"") -> str:
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(signature)])


@pytest.fixture
def genuine(client, api):
    session = client.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
    return session, api.signer.verify(session.access_token)


def hostile_tokens(api, claims):
    secret = api.settings.jwt_secret
    expired = {**claims, "iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}
    head, body, sig = jwt.encode(claims, secret, algorithm="HS256").split(".")
    promoted = _b64(json.dumps({**claims, "role": "service_role"}).encode())
    other_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "alg none": _forge({"alg": "none", "typ": "JWT"}, claims),
        "alg None": _forge({"alg": "None", "typ": "JWT"}, claims),
        "HS512 with the secret": jwt.encode(claims, secret, algorithm="HS512"),
        "HS384 with the secret": jwt.encode(claims, secret, algorithm="HS384"),
        "another secret": jwt.encode(claims, "x" * 48, algorithm="HS256"),
        "expired": jwt.encode(expired, secret, algorithm="HS256"),
        "tampered payload": f"{head}.{promoted}.{sig}",
        "signature cut": f"{head}.{body}.",
        "ES256 from a foreign key": jwt.encode(claims, other_key, algorithm="ES256", headers={"kid": "x"}),
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, secret, algorithm="HS256"),
        "no role": jwt.encode({k: v for k, v in claims.items() if k != "role"}, secret, algorithm="HS256"),
        "role postgres": jwt.encode({**claims, "role": "postgres"}, secret, algorithm="HS256"),
        "garbage": "not.a.jwt",
    }


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # forging HS384/HS512 on purpose
def test_hostile_tokens_are_refused_everywhere(api, auth_url, genuine):
    session, claims = genuine
    cache = ClaimsCache(api.signer)
    for name, token in hostile_tokens(api, claims).items():
        with pytest.raises(TokenError):
            identify(cache, api.anon_key, f"Bearer {token}")
            pytest.fail(f"{name} accepted by the API's claims cache")
        answer = httpx.get(f"{auth_url}/user", headers=api.headers(token))
        assert answer.status_code == 403, name
        assert answer.json()["error_code"] == "bad_jwt", name
        logout = httpx.post(f"{auth_url}/logout", headers=api.headers(token))
        assert logout.status_code == 403, name
    # The genuine token still works after all that.
    assert httpx.get(f"{auth_url}/user", headers=api.headers(session.access_token)).status_code == 200


@pytest.mark.auth_settings(jwt_algorithm="ES256")
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_es256_tokens_jwks_and_key_confusion(client, api, auth_url):
    session = client.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
    header = jwt.get_unverified_header(session.access_token)
    assert header["alg"] == "ES256"
    keys = httpx.get(f"{auth_url}/.well-known/jwks.json").json()["keys"]
    assert [k["kid"] for k in keys] == [header["kid"]] and keys[0]["kty"] == "EC" and "d" not in keys[0]
    public = jwt.PyJWK(keys[0]).key
    assert jwt.decode(session.access_token, public, algorithms=["ES256"], audience="authenticated")["sub"]
    # The client verifies the signature itself against the JWKS.
    assert client.get_claims(session.access_token)["claims"]["session_id"]
    claims = api.signer.verify(session.access_token)
    # Key confusion: an HMAC keyed with the public key (as a naive verifier would accept) is refused.
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    confused = _forge({"alg": "HS256", "typ": "JWT"}, claims)
    head, body, _ = confused.split(".")
    import hashlib
    import hmac

    signature = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    confused = f"{head}.{body}.{_b64(signature)}"
    for token in (confused, *hostile_tokens(api, claims).values()):
        assert httpx.get(f"{auth_url}/user", headers=api.headers(token)).status_code == 403
    # API keys stay HS256 (built into app releases, they survive a rotation of the ES256 key), and other
    # legacy HS256 tokens signed with the secret still verify.
    assert jwt.get_unverified_header(api.anon_key)["alg"] == "HS256"
    legacy = jwt.encode(claims, api.settings.jwt_secret, algorithm="HS256")
    assert httpx.get(f"{auth_url}/user", headers=api.headers(legacy)).status_code == 200


def test_hs256_publishes_no_keys(auth_url):
    assert httpx.get(f"{auth_url}/.well-known/jwks.json").json() == {"keys": []}


@pytest.mark.auth_settings(auth_rate_limit_per_identifier=3, auth_rate_limit_window=60)
def test_password_guessing_stops_at_the_rate_limit(client, api, auth_url):
    failed, limited_before = auth_metric(api, "sign_in_failed"), auth_metric(api, "rate_limited")
    client.sign_up({"email": "ada@example.com", "password": PASSWORD})
    for guess in range(3):
        with pytest.raises(AuthApiError) as wrong:
            client.sign_in_with_password({"email": "ada@example.com", "password": f"guess-{guess}-xx"})
        assert wrong.value.code == "invalid_credentials"
    answer = httpx.post(f"{auth_url}/token?grant_type=password",
                        json={"email": "ADA@example.com", "password": PASSWORD}, headers=api.headers())
    assert answer.status_code == 429 and answer.json()["error_code"] == "over_request_rate_limit"
    assert 1 <= int(answer.headers["retry-after"]) <= 60
    with pytest.raises(AuthApiError) as limited:
        client.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD})
    assert limited.value.status == 429
    assert auth_metric(api, "sign_in_failed") == failed + 3
    assert auth_metric(api, "rate_limited") == limited_before + 2
    # Other identities are not locked out by Ada's attacker.
    client.sign_up({"email": "bob@example.com", "password": PASSWORD})
    assert client.sign_in_with_password({"email": "bob@example.com", "password": PASSWORD}).session


@pytest.mark.auth_settings(auth_rate_limit_per_ip=4, auth_rate_limit_window=60)
def test_one_address_spraying_many_accounts_is_limited(client):
    for i in range(4):
        with pytest.raises(AuthApiError):
            client.sign_in_with_password({"email": f"user{i}@example.com", "password": PASSWORD})
    with pytest.raises(AuthApiError) as limited:
        client.sign_in_with_password({"email": "user9@example.com", "password": PASSWORD})
    assert limited.value.status == 429 and limited.value.code == "over_request_rate_limit"


@pytest.mark.auth_settings(auth_rate_limit_per_ip=2, auth_rate_limit_window=60, auth_client_ip_header="x-forwarded-for")
def test_behind_a_proxy_the_appended_address_counts_not_the_clients_claim(api, auth_url):
    def attempt(forwarded: str) -> int:
        return httpx.post(f"{auth_url}/token?grant_type=password", headers={**api.headers(),
                          "X-Forwarded-For": forwarded}, json={"email": "a@example.com", "password": "x"}).status_code

    # The client forges a new first entry each time; the proxy appended 203.0.113.7 last.
    assert [attempt(f"10.0.0.{i}, 203.0.113.7") for i in range(3)] == [400, 400, 429]
    assert attempt("198.51.100.1") == 400  # another real client is not limited
