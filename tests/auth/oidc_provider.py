"""A small OpenID Connect provider for the tests: discovery, JWKS, authorize (auto-approves the configured
user) and token endpoints, with RS256 ID tokens. Knobs let a test make it misbehave (wrong nonce, audience,
key, expiry) to check that Tuskbase refuses what it answers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar, Request, Response, get, post
from litestar.response import Redirect

CLIENT_ID = "tuskbase-test"
CLIENT_SECRET = "s3cret-of-the-test-client"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Provider:
    issuer: str = ""
    user: dict[str, Any] = field(default_factory=lambda: {
        "sub": "oidc-user-1", "email": "ada@example.com", "email_verified": True, "name": "Ada Lovelace",
        "picture": "https://pics.example/ada.png"})
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537,
                                                                                     key_size=2048))
    kid: str = "test-key-1"
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # misbehaviour knobs
    nonce_override: str | None = None
    audience_override: str | None = None
    foreign_key: bool = False
    expired: bool = False
    token_requests: list[dict[str, str]] = field(default_factory=list)
    access_tokens: set[str] = field(default_factory=set)

    def jwks(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        return {"keys": [{"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256", "n": _b64(n),
                          "e": _b64(numbers.e.to_bytes(3, "big"))}]}

    def id_token(self, nonce: str | None, **extra: Any) -> str:
        now = int(time.time())
        claims = {**self.user, "iss": self.issuer, "aud": self.audience_override or CLIENT_ID,
                  "iat": now - (7200 if self.expired else 0), "exp": now + (-3600 if self.expired else 600),
                  **extra}
        if nonce is not None or self.nonce_override is not None:
            claims["nonce"] = self.nonce_override or nonce
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if self.foreign_key else self.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    def app(self) -> Litestar:
        provider = self

        @get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {"issuer": provider.issuer, "authorization_endpoint": f"{provider.issuer}/authorize",
                    "token_endpoint": f"{provider.issuer}/token", "jwks_uri": f"{provider.issuer}/jwks",
                    "response_types_supported": ["code"], "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"]}

        @get("/jwks")
        async def jwks() -> dict[str, Any]:
            return provider.jwks()

        @get("/authorize")
        async def authorize(request: Request) -> Response[Any]:
            q = request.query_params
            if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code" or "openid" not in q.get(
                    "scope", "").split():
                return Response({"error": "invalid_request"}, status_code=400)
            code = secrets.token_urlsafe(16)
            provider.codes[code] = {"redirect_uri": q["redirect_uri"], "nonce": q.get("nonce"),
                                    "challenge": q.get("code_challenge")}
            return Redirect(q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")}),
                            status_code=302)

        @post("/token", status_code=200)
        async def token(request: Request) -> Response[Any]:
            form = dict(await request.form())
            provider.token_requests.append(form)
            grant = provider.codes.pop(form.get("code", ""), None)
            if (grant is None or form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET
                    or form.get("redirect_uri") != grant["redirect_uri"]):
                return Response({"error": "invalid_grant"}, status_code=400)
            if grant["challenge"]:
                digest = _b64(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
                if digest != grant["challenge"]:
                    return Response({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
            access_token = secrets.token_urlsafe(16)
            provider.access_tokens.add(access_token)
            return Response({"access_token": access_token, "token_type": "Bearer", "expires_in": 600,
                             "id_token": provider.id_token(grant["nonce"])}, status_code=200)

        def bearer_ok(request: Request) -> bool:
            return request.headers.get("authorization", "").removeprefix("Bearer ") in provider.access_tokens

        @get("/user")
        async def github_user(request: Request) -> Response[Any]:
            """GitHub's shape: numeric id, login, no email when it is private."""
            if not bearer_ok(request):
                return Response({"message": "Bad credentials"}, status_code=401)
            return Response({"id": 4242, "login": "ada", "name": provider.user.get("name"), "email": None,
                             "avatar_url": "https://avatars.example/ada.png"})

        @get("/user/emails")
        async def github_emails(request: Request) -> Response[Any]:
            if not bearer_ok(request):
                return Response({"message": "Bad credentials"}, status_code=401)
            return Response([{"email": "old@example.com", "primary": False, "verified": True},
                             {"email": provider.user["email"], "primary": True,
                              "verified": bool(provider.user.get("email_verified"))}])

        return Litestar([discovery, jwks, authorize, token, github_user, github_emails], openapi_config=None,
                        logging_config=None)


class Server(threading.Thread):
    """Runs an ASGI app under uvicorn on a loopback port, in a thread."""

    def __init__(self, app: Any, port: int) -> None:
        super().__init__(daemon=True)
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))

    def run(self) -> None:
        asyncio.run(self.server.serve())

    def __enter__(self) -> Server:
        self.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.is_alive():
                raise RuntimeError("the test OIDC provider did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.join(10)
