"""JWT signing and verification shared by every service, and the project's generated secrets.

The API signs with HS256 and the shared secret (Supabase's legacy keys) by default, or with ES256 and a
key pair whose public half is published as a JWKS. Verification picks the key from the algorithm named in
the token's header and accepts only HS256 (with the secret) and, when configured, ES256 (with the public
key): never `none`, never an HMAC keyed with the public key. It requires `exp` and `role`: a token without
a role would otherwise run a request as the login role.

Every claim the platform reads is checked for its type and form here, once, before a token reaches the claims
cache (`check_claims`): a well-signed token with `exp` as a string, `role` as a list or a `sub` that is not a
UUID is a `ClaimsError` on every surface, never a TypeError in whatever reads the claim later.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tuskbase.config import PREFIX, Settings, SettingsError

REQUEST_ROLES = frozenset({"anon", "authenticated", "service_role"})
# API keys are deterministic for a secret, so `tuskbase keys` prints the same keys every time.
API_KEY_ISSUED_AT = 1_767_225_600  # 2026-01-01
API_KEY_EXPIRES_AT = API_KEY_ISSUED_AT + 20 * 365 * 24 * 3600
# A token issued a little "in the future" is clock skew between the signer and us, not an attack.
CLOCK_SKEW_SECONDS = 30


class TokenError(Exception):
    """The token is missing, malformed, expired, badly signed or names no allowed role."""


class ClaimsError(TokenError):
    """The token is well signed, but a claim is expired, not yet valid, or of the wrong type or form
    (PostgREST's PGRST303, "JWT claims validation or parsing failed")."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def check_claims(claims: dict[str, Any], now: float) -> None:
    """Refuse claims of the wrong type or form, and a token outside its validity window."""
    for name in ("exp", "iat", "nbf"):
        if name in claims and not _number(claims[name]):
            raise ClaimsError(f"JWT claim '{name}' must be a number")
    if "exp" not in claims:
        raise ClaimsError("JWT claim 'exp' is missing")
    role = claims.get("role")
    if not isinstance(role, str):
        raise ClaimsError("JWT claim 'role' must be a string")
    if role not in REQUEST_ROLES:
        raise ClaimsError("token names no allowed role")
    for name in ("sub", "session_id"):
        if name in claims and not _is_uuid(claims[name]):
            raise ClaimsError(f"JWT claim '{name}' must be a UUID")
    for name in ("iss", "aal"):
        if name in claims and not isinstance(claims[name], str):
            raise ClaimsError(f"JWT claim '{name}' must be a string")
    audience = claims.get("aud")
    if audience is not None and not isinstance(audience, str) and not (
            isinstance(audience, list) and all(isinstance(item, str) for item in audience)):
        raise ClaimsError("JWT claim 'aud' must be a string or a list of strings")
    if "is_anonymous" in claims and not isinstance(claims["is_anonymous"], bool):
        raise ClaimsError("JWT claim 'is_anonymous' must be true or false")
    if claims["exp"] <= now:
        raise ClaimsError("JWT expired")
    if "nbf" in claims and claims["nbf"] > now + CLOCK_SKEW_SECONDS:
        raise ClaimsError("JWT not yet valid")
    if "iat" in claims and claims["iat"] > now + CLOCK_SKEW_SECONDS:
        raise ClaimsError("JWT issued at future")


def _create_once(path: Path, content: bytes) -> None:
    """Write `content` to `path` (0600) unless it exists; atomic, so API workers starting together agree."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    with open(temporary, "xb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(content)
    try:
        os.link(temporary, path)  # fails if another process created it first: theirs wins
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


def read_or_create_secret(path: Path, nbytes: int = 48) -> str:
    """A random secret kept in a 0600 file, created on first use so that keys survive restarts."""
    if not path.exists():
        _create_once(path, (secrets.token_urlsafe(nbytes) + "\n").encode())
    return path.read_text().strip()


def jwt_secret(settings: Settings) -> str:
    return settings.jwt_secret or read_or_create_secret(settings.data_dir / "jwt_secret")


def authenticator_password(settings: Settings) -> str:
    return settings.authenticator_password or read_or_create_secret(settings.data_dir / "authenticator_password")


def es256_private_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    """The ES256 key: from the setting (PEM text or file), else generated once into data_dir (0600)."""
    raw = settings.jwt_private_key.strip()
    if raw and not raw.startswith("-----BEGIN"):
        raw = Path(raw).read_text()
    if not raw:
        path = settings.data_dir / "jwt_es256.pem"
        if not path.exists():
            _create_once(path, ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ))
        raw = path.read_text()
    try:
        key = serialization.load_pem_private_key(raw.encode(), password=None)
    except ValueError:
        key = None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SettingsError(f"{PREFIX}JWT_PRIVATE_KEY must be an unencrypted PEM P-256 (ES256) private key")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The public key as a JWK, its `kid` the RFC 7638 thumbprint (stable for the key)."""
    numbers = key.public_numbers()
    jwk = {"crv": "P-256", "kty": "EC", "x": _b64(numbers.x.to_bytes(32, "big")),
           "y": _b64(numbers.y.to_bytes(32, "big"))}
    thumbprint = _b64(hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()).digest())
    return {**jwk, "kid": thumbprint[:16], "alg": "ES256", "use": "sig", "key_ops": ["verify"]}


def extra_public_keys(settings: Settings) -> tuple[ec.EllipticCurvePublicKey, ...]:
    """Earlier ES256 public keys still accepted (key rotation): PEM text, or a file, holding one or more keys."""
    raw = settings.jwt_previous_public_keys.strip()
    if raw and not raw.startswith("-----BEGIN"):
        raw = Path(raw).read_text()
    keys = []
    for block in raw.split("-----END PUBLIC KEY-----"):
        if "-----BEGIN PUBLIC KEY-----" in block:
            try:
                key = serialization.load_pem_public_key((block.strip() + "\n-----END PUBLIC KEY-----\n").encode())
            except ValueError:
                key = None
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
                raise SettingsError(f"{PREFIX}JWT_PREVIOUS_PUBLIC_KEYS must hold PEM P-256 (ES256) public keys")
            keys.append(key)
    return tuple(keys)


_SIGNATURE_ONLY: Any = {"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False,
                        "verify_iss": False, "verify_sub": False, "verify_jti": False, "require": []}


@dataclass(frozen=True)
class Signer:
    """Signs and verifies the project's tokens.

    API keys (anon, service_role) are always HS256 with the secret, like Supabase's legacy keys: they are built
    into app releases, so rotating the ES256 signing key must not invalidate them.
    """

    secret: str
    issuer: str
    algorithms: tuple[str, ...] = ("HS256",)
    private_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    previous_keys: tuple[ec.EllipticCurvePublicKey, ...] = field(default=(), repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer:
        if settings.jwt_algorithm == "ES256":
            return cls(secret=jwt_secret(settings), issuer=settings.jwt_issuer, algorithms=("ES256", "HS256"),
                       private_key=es256_private_key(settings), previous_keys=extra_public_keys(settings))
        return cls(secret=jwt_secret(settings), issuer=settings.jwt_issuer)

    @property
    def algorithm(self) -> str:
        """The algorithm new tokens are signed with."""
        return "ES256" if self.private_key is not None else "HS256"

    @property
    def jwk(self) -> dict[str, Any] | None:
        return public_jwk(self.private_key.public_key()) if self.private_key is not None else None

    def jwks(self) -> dict[str, Any]:
        """The public keys clients may verify tokens with (none for HS256: the secret is not public)."""
        return {"keys": [public_jwk(key) for key in self._public_keys().values()]}

    def _public_keys(self) -> dict[str, ec.EllipticCurvePublicKey]:
        """kid -> public key: the signing key first, then earlier ones still accepted."""
        cached = self.__dict__.get("_keys_by_kid")
        if cached is None:
            keys = ([self.private_key.public_key()] if self.private_key is not None else []) + list(self.previous_keys)
            cached = {public_jwk(key)["kid"]: key for key in keys}
            object.__setattr__(self, "_keys_by_kid", cached)
        return cached

    def sign(self, claims: dict[str, Any]) -> str:
        if self.private_key is not None:
            return jwt.encode(claims, self.private_key, algorithm="ES256", headers={"kid": self._kid})
        return jwt.encode(claims, self.secret, algorithm="HS256")

    @property
    def _kid(self) -> str:
        return next(iter(self._public_keys()))

    def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise TokenError(f"invalid token: {error}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise TokenError(f"invalid token: algorithm {alg!r} is not allowed")
        key: Any = self.secret
        if alg == "ES256":
            kid = header.get("kid") or self._kid
            key = self._public_keys().get(kid) if isinstance(kid, str) else None
            if key is None:
                raise TokenError("invalid token: unknown signing key")
        try:
            # The signature only: the claims are checked by `check_claims`, types first.
            claims = jwt.decode(token, key, algorithms=[alg], options=_SIGNATURE_ONLY)
        except jwt.PyJWTError as error:
            raise TokenError(f"invalid token: {error}") from None
        check_claims(claims, time.time())
        return claims

    def api_key(self, role: str) -> str:
        """The long-lived anon or service-role key clients send in the `apikey` header (HS256, see above)."""
        claims = {"iss": self.issuer, "role": role, "iat": API_KEY_ISSUED_AT, "exp": API_KEY_EXPIRES_AT}
        return jwt.encode(claims, self.secret, algorithm="HS256")


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
        """Claims of `token` and their JSON encoding (what `caller.transaction` sets)."""
        if not isinstance(token, str):  # a JSON message (the live channel) can carry anything
            raise TokenError("invalid token: the token must be a string")
        entry = self._entries.get(token)
        if entry is None or entry[0]["exp"] <= time.time():
            claims = self.signer.verify(token)
            if len(self._entries) >= self.size:
                self._entries.clear()
            entry = (claims, json.dumps(claims, separators=(",", ":"), default=str))
            self._entries[token] = entry
        return entry

    def cached(self, token: str) -> dict[str, Any] | None:
        """Claims of `token` if it was verified before and is still in the cache, else None (no verification)."""
        entry = self._entries.get(token)
        return entry[0] if entry is not None else None
