"""JWT signing and verification shared by every service, and the project's generated secrets.

The API signs with HS256 and the shared secret (Supabase's legacy keys). Verification accepts only the
algorithms configured, never `none`, and requires `exp` and `role`: a token without a role would
otherwise run a request as the login role.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from tuskbase.config import Settings

REQUEST_ROLES = frozenset({"anon", "authenticated", "service_role"})
# API keys are deterministic for a secret, so `tuskbase keys` prints the same keys every time.
API_KEY_ISSUED_AT = 1_767_225_600  # 2026-01-01
API_KEY_EXPIRES_AT = API_KEY_ISSUED_AT + 20 * 365 * 24 * 3600


class TokenError(Exception):
    """The token is missing, malformed, expired, badly signed or names no allowed role."""


def read_or_create_secret(path: Path, nbytes: int = 48) -> str:
    """A random secret kept in a 0600 file, created on first use so that keys survive restarts."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value


def jwt_secret(settings: Settings) -> str:
    return settings.jwt_secret or read_or_create_secret(settings.data_dir / "jwt_secret")


def authenticator_password(settings: Settings) -> str:
    return settings.authenticator_password or read_or_create_secret(settings.data_dir / "authenticator_password")


@dataclass(frozen=True)
class Signer:
    """Signs and verifies the project's tokens."""

    secret: str
    issuer: str
    algorithms: tuple[str, ...] = ("HS256",)

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer:
        return cls(secret=jwt_secret(settings), issuer=settings.jwt_issuer)

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def verify(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=list(self.algorithms),
                options={"require": ["exp", "role"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token is expired") from None
        except jwt.PyJWTError as error:
            raise TokenError(f"invalid token: {error}") from None
        if claims.get("role") not in REQUEST_ROLES:
            raise TokenError("token names no allowed role")
        return claims

    def api_key(self, role: str) -> str:
        """The long-lived anon or service-role key clients send in the `apikey` header."""
        claims = {"iss": self.issuer, "role": role, "iat": API_KEY_ISSUED_AT, "exp": API_KEY_EXPIRES_AT}
        return self.sign(claims)


class ClaimsCache:
    """Verified claims of recently seen tokens, so the hot path does not re-verify a signature per request.

    A cached entry is still checked for expiry on every hit; revocation of sessions is enforced in SQL
    (policies can call the auth helpers), not by this cache.
    """

    def __init__(self, signer: Signer, size: int = 4096) -> None:
        self.signer = signer
        self.size = size
        self._entries: dict[str, tuple[dict[str, Any], str]] = {}

    def verify(self, token: str) -> tuple[dict[str, Any], str]:
        """Claims of `token` and their JSON encoding (what `request_transaction` sets)."""
        entry = self._entries.get(token)
        if entry is None or entry[0]["exp"] <= time.time():
            claims = self.signer.verify(token)
            if len(self._entries) >= self.size:
                self._entries.clear()
            entry = (claims, json.dumps(claims, separators=(",", ":"), default=str))
            self._entries[token] = entry
        return entry

    def from_headers(self, apikey: str | None, authorization: str | None) -> tuple[dict[str, Any], str]:
        """Identity of a request: the bearer token if any, else the `apikey` (anon or service key)."""
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise TokenError("Authorization header must be `Bearer <token>`")
            return self.verify(token.strip())
        if apikey:
            return self.verify(apikey.strip())
        raise TokenError("no apikey or Authorization header")
