"""Signed tokens whose claims have the wrong type or form: a coded 4xx on every surface, on every call.

The signature is valid (the tokens are signed with the project's secret), so only the claims can be refused;
they are checked in one place (`tokens.Signer.verify`), so REST, auth and sync answer alike, each in its
own error format. The second call matters: a token that got into the claims cache once must not break
every later request that carries it.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import TEST_JWT_SECRET

USER = "00000000-0000-4000-8000-00000000a11c"

BAD_CLAIMS: list[tuple[str, dict[str, Any]]] = [
    ("exp as a string", {"exp": str(int(time.time()) + 3600)}),
    ("exp as a boolean", {"exp": True}),
    ("exp infinite", {"exp": float("inf")}),
    ("iat as a string", {"iat": "yesterday"}),
    ("nbf as a list", {"nbf": [1]}),
    ("role as a list", {"role": ["authenticated"]}),
    ("role as an object", {"role": {"name": "service_role"}}),
    ("sub not a UUID", {"sub": "alice"}),
    ("sub as a number", {"sub": 42}),
    ("sub empty", {"sub": ""}),
    ("session_id not a UUID", {"session_id": "s-1"}),
    ("aud as a number", {"aud": 7}),
    ("iss as a list", {"iss": ["tuskbase"]}),
]


def _token(api, **overrides: Any) -> str:
    """Signed with the project's secret as given: PyJWT's `encode` would refuse some of these claims itself."""
    now = int(time.time())
    claims = {"sub": USER, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 3600,
              "iss": api.settings.jwt_issuer, "session_id": str(uuid.uuid4()), **overrides}
    return jwt.api_jws.encode(json.dumps(claims).encode(), TEST_JWT_SECRET, algorithm="HS256")


def _headers(api, token: str) -> dict[str, str]:
    return {"apikey": api.anon_key, "Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(("name", "claims"), BAD_CLAIMS, ids=[name for name, _ in BAD_CLAIMS])
def test_bad_claims_are_refused_in_each_surface_format(api, name, claims):
    token = _token(api, **claims)
    with httpx.Client(base_url=api.url, headers=_headers(api, token)) as client:
        for _ in range(2):  # the second call meets whatever the first left in the claims cache
            rest = client.get("/rest/v1/todos")
            assert rest.status_code == 401, rest.text
            assert rest.json()["code"] == "PGRST303", rest.text
            assert set(rest.json()) == {"code", "message", "details", "hint"}
            assert rest.headers["www-authenticate"].startswith("Bearer")

            auth = client.get("/auth/v1/user", headers={"X-Supabase-Api-Version": "2024-01-01"})
            assert auth.status_code == 403, auth.text
            assert auth.json()["code"] == "bad_jwt", auth.text
            assert auth.headers["x-sb-error-code"] == "bad_jwt"

            sync = client.post("/sync/v1/pull", json={"client_id": "device-1", "cursor": None})
            assert sync.status_code == 401, sync.text
            assert sync.json()["code"] == "SYNC105", sync.text


def test_well_formed_claims_still_pass(api):
    """The checks refuse only what is malformed: a plain user token, and one without the optional claims."""
    now = int(time.time())
    minimal = api.signer.sign({"role": "authenticated", "sub": USER, "exp": now + 60.5})
    for token in (_token(api), minimal, api.service_key):
        response = httpx.get(f"{api.url}/rest/v1/todos", headers=_headers(api, token))
        assert response.status_code == 200, response.text
    root = httpx.get(f"{api.url}/rest/v1/", headers={"apikey": api.anon_key})
    assert root.status_code == 200, root.text


def test_expired_token_is_a_claims_error(api):
    """PostgREST answers an expired token with PGRST303 ("JWT expired"), a token it cannot decode with PGRST301."""
    expired = httpx.get(f"{api.url}/rest/v1/todos", headers=_headers(api, _token(api, exp=int(time.time()) - 10)))
    assert expired.status_code == 401
    assert expired.json()["code"] == "PGRST303"
    assert "expired" in expired.json()["message"]
    garbled = httpx.get(f"{api.url}/rest/v1/todos", headers=_headers(api, "x.y.z"))
    assert garbled.status_code == 401
    assert garbled.json()["code"] == "PGRST301"


def test_malformed_headers_and_tokens_are_token_errors(tmp_path):
    """What a WebSocket message or a hand-made header can carry: a token that is not a string, a header whose
    `kid` or `alg` is not a string. Each is a TokenError (a coded 401 on every surface), not a TypeError."""
    from tuskbase.config import Settings
    from tuskbase.tokens import ClaimsCache, Signer, TokenError

    signer = Signer.from_settings(Settings(jwt_secret=TEST_JWT_SECRET, jwt_algorithm="ES256",
                                           data_dir=tmp_path))
    claims = {"role": "authenticated", "sub": USER, "exp": int(time.time()) + 60}

    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    for header in ({"alg": "ES256", "kid": ["a"]}, {"alg": ["ES256"]}, {"alg": None}):
        with pytest.raises(TokenError):
            signer.verify(f"{part(header)}.{part(claims)}.AAAA")
    cache = ClaimsCache(signer)
    for token in (["a"], {"t": 1}, 7, None):
        with pytest.raises(TokenError):
            cache.verify(token)  # type: ignore[arg-type]
    assert cache.verify(signer.sign(claims))[0]["sub"] == USER
