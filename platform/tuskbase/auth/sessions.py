"""Per-device sessions, access tokens and rotating refresh tokens.

A session is one signed-in device. Its refresh tokens form a chain: each use revokes the token and
creates its child. Only SHA-256 hashes are stored. A child is derived from its parent with an HMAC keyed by
the project's secret, so a client that refreshed twice in a race (the reuse interval) can be handed the
chain's current token again without any raw token being stored. A revoked token used after the reuse
interval means the chain leaked: the whole session is revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from tuskbase.auth import audit, errors, metrics, users
from tuskbase.auth.store import dump_json
from tuskbase.config import Settings
from tuskbase.tokens import REQUEST_ROLES, Signer

INSERT_SESSION = """
insert into auth.sessions (user_id, aal, amr, device_id, platform, app_version, user_agent, ip)
values ($1, 'aal1', $2::jsonb, $3, $4, $5, $6, $7::inet)
returning id
"""
INSERT_REFRESH_TOKEN = """
insert into auth.refresh_tokens (token_hash, session_id, user_id, parent_id) values ($1, $2, $3, $4)
"""
SELECT_REFRESH_TOKEN = """
select t.id, t.session_id, t.user_id, t.revoked, extract(epoch from now() - t.updated_at) as idle,
       extract(epoch from now() - s.last_seen_at) as inactive, extract(epoch from now() - s.created_at) as age,
       s.revoked_at, s.amr::text as amr, s.aal
from auth.refresh_tokens t join auth.sessions s on s.id = t.session_id
where t.token_hash = $1
for update of t, s
"""
SELECT_CHAIN_TOKEN = "select id, revoked from auth.refresh_tokens where token_hash = $1 and session_id = $2"
ROTATE = """
with revoked as (update auth.refresh_tokens set revoked = true, updated_at = now() where id = $1),
     child as (insert into auth.refresh_tokens (token_hash, session_id, user_id, parent_id) values ($2, $3, $4, $1))
update auth.sessions set refreshed_at = now(), last_seen_at = now(), updated_at = now(),
  device_id = coalesce($5, device_id), platform = coalesce($6, platform),
  app_version = coalesce($7, app_version), user_agent = coalesce($8, user_agent), ip = coalesce($9::inet, ip)
where id = $3
"""
TOUCH_SESSION = """
update auth.sessions set refreshed_at = now(), last_seen_at = now(), updated_at = now(),
  device_id = coalesce($2, device_id), platform = coalesce($3, platform),
  app_version = coalesce($4, app_version), user_agent = coalesce($5, user_agent), ip = coalesce($6::inet, ip)
where id = $1
"""
REVOKE_SESSION_FAMILY = """
with s as (update auth.sessions set revoked_at = now(), revoked_reason = $2, updated_at = now()
           where id = $1 and revoked_at is null returning id)
update auth.refresh_tokens set revoked = true, updated_at = now() where session_id in (select id from s)
"""
REVOKE_SESSIONS = """
with s as (update auth.sessions set revoked_at = now(), revoked_reason = $4, updated_at = now()
           where user_id = $1 and revoked_at is null
             and ($2::uuid is null or id = $2) and ($3::uuid is null or id <> $3)
           returning id)
update auth.refresh_tokens set revoked = true, updated_at = now() where session_id in (select id from s)
"""
SELECT_ACTIVE_SESSION = """
select id from auth.sessions where id = $1 and user_id = $2 and revoked_at is null
"""
LIST_SESSIONS = """
select id, aal, device_id, platform, app_version, user_agent, host(ip) as ip, created_at, updated_at,
       refreshed_at, last_seen_at
from auth.sessions where user_id = $1 and revoked_at is null order by last_seen_at desc
"""
REVOKE_ONE = """
with s as (update auth.sessions set revoked_at = now(), revoked_reason = $3, updated_at = now()
           where id = $1 and user_id = $2 and revoked_at is null returning id),
     t as (update auth.refresh_tokens set revoked = true, updated_at = now()
           where session_id in (select id from s))
select count(*) from s
"""

MAX_HEADER = 200


@dataclass(frozen=True)
class Device:
    """What a client tells about the device a session lives on (optional headers, else its user agent)."""

    device_id: str | None = None
    platform: str | None = None
    app_version: str | None = None
    user_agent: str | None = None
    ip: str | None = None

    @classmethod
    def from_headers(cls, headers: Any, ip: str | None) -> Device:
        def pick(name: str) -> str | None:
            value = headers.get(name)
            return value[:MAX_HEADER] if value else None

        platform = pick("x-device-platform")
        if platform is None:
            # supabase-py and supabase-js send "...; platform=Linux; ..." in X-Client-Info.
            for part in (headers.get("x-client-info") or "").split(";"):
                key, _, value = part.strip().partition("=")
                if key == "platform" and value:
                    platform = value[:MAX_HEADER]
        return cls(pick("x-device-id"), platform, pick("x-app-version"), pick("user-agent"), ip)


def hash_token(raw: str) -> bytes:
    return hashlib.sha256(raw.encode()).digest()


def child_token(signer: Signer, parent: str) -> str:
    key = hmac.new(signer.secret.encode(), b"tuskbase refresh token chain v1", hashlib.sha256).digest()
    return hmac.new(key, parent.encode(), hashlib.sha256).hexdigest()[:40]


def amr_entry(method: str) -> list[dict[str, Any]]:
    return [{"method": method, "timestamp": int(time.time())}]


async def create(conn: asyncpg.Connection, user_id: uuid.UUID, method: str, device: Device) -> tuple[uuid.UUID, str]:
    """A new session for the user and its first refresh token."""
    session_id = await conn.fetchval(INSERT_SESSION, user_id, dump_json(amr_entry(method)), device.device_id,
                                     device.platform, device.app_version, device.user_agent, device.ip)
    raw = secrets.token_hex(20)
    await conn.execute(INSERT_REFRESH_TOKEN, hash_token(raw), session_id, user_id, None)
    await conn.execute(users.TOUCH_SIGN_IN, user_id)
    return session_id, raw


RESTART_CHAIN = """
update auth.refresh_tokens set revoked = true, updated_at = now() where session_id = $1 and not revoked
"""


async def step_up(conn: asyncpg.Connection, settings: Settings, signer: Signer, user: asyncpg.Record,
                  session_id: uuid.UUID, amr: list[dict[str, Any]]) -> dict[str, Any]:
    """The session after a second factor: aal2, a fresh refresh-token chain (the old one is retired)."""
    await conn.execute(RESTART_CHAIN, session_id)
    raw = secrets.token_hex(20)
    await conn.execute(INSERT_REFRESH_TOKEN, hash_token(raw), session_id, user["id"], None)
    return await session_json(conn, settings, signer, user, session_id, raw, amr, "aal2")


def access_claims(settings: Settings, user: asyncpg.Record, session_id: uuid.UUID,
                  amr: list[dict[str, Any]], aal: str = "aal1") -> dict[str, Any]:
    now = int(time.time())
    exp = now + settings.jwt_exp
    user_json_meta = users.load_json(user["app_meta"]), users.load_json(user["user_meta"])
    claims = {
        "iss": settings.jwt_issuer,
        "sub": str(user["id"]),
        "aud": user["aud"],
        "exp": exp,
        "iat": now,
        "email": user["email"] or "",
        "phone": user["phone"] or "",
        "app_metadata": user_json_meta[0],
        "user_metadata": user_json_meta[1],
        "role": user["role"],
        "aal": aal,
        "amr": amr,
        "session_id": str(session_id),
        "is_anonymous": user["is_anonymous"],
    }
    return claims


# Claims a hook may not change: who the token is for, for how long, and which session it belongs to.
FIXED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "session_id", "is_anonymous", "aal", "amr")


async def run_hook(conn: asyncpg.Connection, settings: Settings, claims: dict[str, Any]) -> dict[str, Any]:
    """Supabase's custom access token hook: `fn({user_id, claims, authentication_method}) -> {claims}`."""
    schema, name = settings.auth_hook_custom_access_token.split(".")  # validated [a-z0-9_] by Settings
    call = 'select "' + schema + '"."' + name + '"($1::jsonb)::text'
    event = {"user_id": claims["sub"], "claims": claims, "authentication_method": claims["amr"][-1]["method"]}
    try:
        answer = users.load_json(await conn.fetchval(call, dump_json(event)))
    except (asyncpg.PostgresError, ValueError) as error:
        raise errors.AuthError(500, errors.UNEXPECTED_FAILURE, f"custom access token hook failed: {error}") from None
    changed = answer.get("claims") if isinstance(answer, dict) else None
    if (not isinstance(changed, dict) or any(changed.get(k) != claims[k] for k in FIXED_CLAIMS)
            or changed.get("role") not in REQUEST_ROLES):
        raise errors.AuthError(500, errors.UNEXPECTED_FAILURE,
                               "custom access token hook returned invalid claims (fixed claims changed or bad role)")
    return changed


async def session_json(conn: asyncpg.Connection, settings: Settings, signer: Signer, user: asyncpg.Record,
                       session_id: uuid.UUID, refresh_token: str, amr: list[dict[str, Any]],
                       aal: str = "aal1") -> dict[str, Any]:
    """The session object the clients store: tokens plus the user."""
    claims = access_claims(settings, user, session_id, amr, aal)
    if settings.auth_hook_custom_access_token:
        claims = await run_hook(conn, settings, claims)
    return {
        "access_token": signer.sign(claims),
        "token_type": "bearer",
        "expires_in": settings.jwt_exp,
        "expires_at": claims["exp"],
        "refresh_token": refresh_token,
        "user": users.to_json(user),
        "weak_password": None,
    }


async def sign_in(conn: asyncpg.Connection, settings: Settings, signer: Signer, user: asyncpg.Record,
                  method: str, device: Device) -> dict[str, Any]:
    """A new session for `user`: the common end of every sign-in flow."""
    if users.is_banned(user):
        raise errors.AuthError(400, errors.USER_BANNED, "User is banned")
    session_id, raw = await create(conn, user["id"], method, device)
    metrics.count("sign_in")
    await audit.record(conn, "login", user["id"], session_id=session_id, ip=device.ip, method=method,
                       device_id=device.device_id, platform=device.platform)
    user = await users.by_id(conn, user["id"])  # last_sign_in_at changed
    return await session_json(conn, settings, signer, user, session_id, raw, amr_entry(method))


class RefreshOutcome:
    """Either a session to answer with, or an error to raise after the revocation committed."""

    def __init__(self, session: dict[str, Any] | None = None, error: errors.AuthError | None = None) -> None:
        self.session = session
        self.error = error


def not_found() -> errors.AuthError:
    # A fresh exception each time: a shared instance raised again and again would grow its traceback.
    return errors.AuthError(400, errors.REFRESH_TOKEN_NOT_FOUND, "Invalid Refresh Token: Refresh Token Not Found")


async def refresh(conn: asyncpg.Connection, settings: Settings, signer: Signer, raw: str,
                  device: Device) -> RefreshOutcome:
    row = await conn.fetchrow(SELECT_REFRESH_TOKEN, hash_token(raw))
    if row is None or row["revoked_at"] is not None:
        return RefreshOutcome(error=not_found())
    user = await users.by_id(conn, row["user_id"])
    if user is None:
        return RefreshOutcome(error=not_found())
    if users.is_banned(user):
        return RefreshOutcome(error=errors.AuthError(400, errors.USER_BANNED, "User is banned"))
    timebox = settings.auth_session_timebox
    if timebox and row["age"] > timebox:
        await conn.execute(REVOKE_SESSION_FAMILY, row["session_id"], "timebox")
        await audit.record(conn, "session_expired", row["user_id"], session_id=row["session_id"], ip=device.ip,
                           reason="timebox")
        return RefreshOutcome(error=errors.AuthError(
            400, errors.SESSION_EXPIRED, "Invalid Refresh Token: Session Expired"))
    timeout = settings.auth_session_inactivity_timeout
    if timeout and row["inactive"] > timeout:
        await conn.execute(REVOKE_SESSION_FAMILY, row["session_id"], "inactivity")
        await audit.record(conn, "session_expired", row["user_id"], session_id=row["session_id"], ip=device.ip)
        return RefreshOutcome(error=errors.AuthError(
            400, errors.SESSION_EXPIRED, "Invalid Refresh Token: Session Expired (Inactivity)"))
    amr = users.load_json(row["amr"]) or amr_entry("password")
    if row["revoked"]:
        if row["idle"] > settings.auth_refresh_reuse_interval:
            # A rotated token came back long after its rotation: the chain leaked. Stop the whole session.
            await conn.execute(REVOKE_SESSION_FAMILY, row["session_id"], "refresh_token_reuse")
            metrics.count("refresh_reuse_detected")
            await audit.record(conn, "token_reuse_detected", row["user_id"], session_id=row["session_id"],
                               ip=device.ip)
            return RefreshOutcome(error=errors.AuthError(
                400, errors.REFRESH_TOKEN_ALREADY_USED, "Invalid Refresh Token: Already Used"))
        # A concurrent refresh (two requests, flaky network): hand back the chain's current token.
        current = raw
        for _ in range(16):
            current = child_token(signer, current)
            link = await conn.fetchrow(SELECT_CHAIN_TOKEN, hash_token(current), row["session_id"])
            if link is None:
                return RefreshOutcome(error=not_found())
            if not link["revoked"]:
                await _touch(conn, row["session_id"], device)
                return RefreshOutcome(await session_json(conn, settings, signer, user, row["session_id"],
                                                         current, amr, row["aal"]))
        return RefreshOutcome(error=not_found())
    child = child_token(signer, raw)
    metrics.count("refresh")
    await conn.execute(ROTATE, row["id"], hash_token(child), row["session_id"], row["user_id"], device.device_id,
                       device.platform, device.app_version, device.user_agent, device.ip)
    return RefreshOutcome(await session_json(conn, settings, signer, user, row["session_id"], child, amr,
                                             row["aal"]))


async def _touch(conn: asyncpg.Connection, session_id: uuid.UUID, device: Device) -> None:
    await conn.execute(TOUCH_SESSION, session_id, device.device_id, device.platform, device.app_version,
                       device.user_agent, device.ip)


async def is_active(conn: asyncpg.Connection, session_id: str, user_id: str) -> bool:
    try:
        return await conn.fetchval(SELECT_ACTIVE_SESSION, uuid.UUID(session_id), uuid.UUID(user_id)) is not None
    except ValueError:
        return False


async def logout(conn: asyncpg.Connection, user_id: uuid.UUID, session_id: uuid.UUID | None, scope: str) -> None:
    """Supabase's scopes: `local` this session, `others` every other one, `global` all of them."""
    if scope == "local":
        if session_id is not None:
            await conn.execute(REVOKE_SESSIONS, user_id, session_id, None, "logout")
    elif scope == "others":
        await conn.execute(REVOKE_SESSIONS, user_id, None, session_id, "logout_others")
    else:
        await conn.execute(REVOKE_SESSIONS, user_id, None, None, "logout_global")


async def list_for(conn: asyncpg.Connection, user_id: uuid.UUID, current: str | None) -> list[dict[str, Any]]:
    rows = await conn.fetch(LIST_SESSIONS, user_id)
    return [
        {
            "id": str(r["id"]),
            "aal": r["aal"],
            "device_id": r["device_id"],
            "platform": r["platform"],
            "app_version": r["app_version"],
            "user_agent": r["user_agent"],
            "ip": r["ip"],
            "created_at": users.time_json(r["created_at"]),
            "updated_at": users.time_json(r["updated_at"]),
            "refreshed_at": users.time_json(r["refreshed_at"]),
            "last_seen_at": users.time_json(r["last_seen_at"]),
            "current": str(r["id"]) == current,
        }
        for r in rows
    ]


async def revoke(conn: asyncpg.Connection, user_id: uuid.UUID, session_id: uuid.UUID, reason: str) -> bool:
    """Revoke one session of the user (a lost phone); False when it is not theirs or already gone."""
    return await conn.fetchval(REVOKE_ONE, session_id, user_id, reason) > 0
