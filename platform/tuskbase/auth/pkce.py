"""PKCE (RFC 7636): a flow that ends in a redirect hands out a one-time auth code instead of tokens; only the
client holding the code verifier can exchange it (`POST /token?grant_type=pkce`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from typing import Any

import asyncpg

from tuskbase.auth import errors, sessions, users
from tuskbase.auth.context import Context

FLOW_LIFETIME = 600  # seconds from the flow's start (mail links use the OTP lifetime instead)
INSERT_FLOW = """
insert into auth.flow_state (user_id, code_challenge, code_challenge_method, provider_type, authentication_method,
                             redirect_to, oauth_state_hash, oauth_nonce, oauth_verifier)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning id
"""
ISSUE_CODE = """
update auth.flow_state set auth_code_hash = $2, auth_code_issued_at = now(), user_id = coalesce($3, user_id)
where id = $1
"""
TAKE_FLOW_BY_CODE = """
delete from auth.flow_state where auth_code_hash = $1
returning user_id, code_challenge, code_challenge_method, authentication_method,
          extract(epoch from now() - auth_code_issued_at) as age
"""


def challenge_of(body: dict[str, Any]) -> tuple[str, str] | None:
    """The client's (code_challenge, method) when it asked for PKCE; method s256 unless plain."""
    challenge = body.get("code_challenge")
    if not challenge:
        return None
    method = str(body.get("code_challenge_method") or "s256").lower()
    if not isinstance(challenge, str) or not 43 <= len(challenge) <= 128 or method not in ("s256", "plain"):
        raise errors.bad_request("PKCE flow requires a code_challenge of 43-128 characters and method s256 or plain")
    return challenge, method


async def start(conn: asyncpg.Connection, challenge: tuple[str, str] | None, provider_type: str, method: str,
                *, user_id: uuid.UUID | None = None, redirect_to: str | None = None,
                oauth_state_hash: bytes | None = None, oauth_nonce: str | None = None,
                oauth_verifier: str | None = None) -> uuid.UUID:
    code_challenge, code_method = challenge if challenge else (None, None)
    return await conn.fetchval(INSERT_FLOW, user_id, code_challenge, code_method, provider_type, method,
                               redirect_to, oauth_state_hash, oauth_nonce, oauth_verifier)


async def issue_code(conn: asyncpg.Connection, flow_id: uuid.UUID, user_id: uuid.UUID | None = None) -> str:
    code = str(uuid.uuid4()) + "-" + secrets.token_hex(8)
    await conn.execute(ISSUE_CODE, flow_id, hashlib.sha256(code.encode()).digest(), user_id)
    return code


def _matches(verifier: str, challenge: str, method: str) -> bool:
    if method == "plain":
        return hmac.compare_digest(verifier, challenge)
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return hmac.compare_digest(digest, challenge)


async def exchange(conn: asyncpg.Connection, ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    code, verifier = body.get("auth_code"), body.get("code_verifier")
    if not isinstance(code, str) or not code or not isinstance(verifier, str) or not verifier:
        raise errors.bad_request("invalid request: both auth code and code verifier should be non-empty")
    flow = await conn.fetchrow(TAKE_FLOW_BY_CODE, hashlib.sha256(code.encode()).digest())
    if flow is None or flow["user_id"] is None:
        raise errors.AuthError(404, errors.FLOW_STATE_NOT_FOUND, "invalid flow state, no valid flow state found")
    if flow["age"] > FLOW_LIFETIME:
        raise errors.AuthError(400, errors.FLOW_STATE_EXPIRED, "invalid flow state, flow state has expired")
    if not flow["code_challenge"] or not _matches(verifier, flow["code_challenge"], flow["code_challenge_method"]):
        raise errors.AuthError(400, errors.BAD_CODE_VERIFIER,
                               "code challenge does not match previously saved code verifier")
    user = await users.by_id(conn, flow["user_id"])
    if user is None:
        raise errors.AuthError(404, errors.USER_NOT_FOUND, "User not found")
    method = "oauth" if flow["authentication_method"] == "oauth_link" else flow["authentication_method"]
    return await sessions.sign_in(conn, ctx.settings, ctx.signer, user, method, ctx.device)
