"""Multi-factor authentication with TOTP, as Supabase Auth's /factors API (enroll, challenge, verify, unenroll).

A verified challenge raises the session to aal2 (the `aal` claim policies can require) and adds `totp` to its
`amr`. Codes are checked with one step of clock drift either way and each time step is accepted once.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pyotp
import segno

from tuskbase.auth import audit, errors, metrics, ratelimit, sessions, store, users
from tuskbase.auth.context import Context, string
from tuskbase.auth.store import dump_json, load_json
from tuskbase.auth.user import current

CHALLENGE_LIFETIME = 300
MAX_UNVERIFIED = 10
SELECT_SESSION = """
select aal, amr::text as amr from auth.sessions where id = $1 and user_id = $2 and revoked_at is null for update
"""
COUNT_FACTORS = """
select count(*) filter (where status = 'verified') as verified, count(*) filter (where status <> 'verified') as other
from auth.mfa_factors where user_id = $1
"""
INSERT_FACTOR = """
insert into auth.mfa_factors (user_id, friendly_name, factor_type, secret) values ($1, $2, 'totp', $3) returning id
"""
SELECT_FACTOR = "select id, status, secret, last_used_step from auth.mfa_factors where id = $1 and user_id = $2"
INSERT_CHALLENGE = """
insert into auth.mfa_challenges (factor_id, ip) values ($1, $2::inet)
returning id, extract(epoch from created_at)::bigint + $3 as expires_at
"""
TAKE_CHALLENGE = """
update auth.mfa_challenges set verified_at = now()
where id = $1 and factor_id = $2 and verified_at is null and created_at > now() - make_interval(secs => $3)
returning id
"""
ACCEPT_CODE = """
update auth.mfa_factors set status = 'verified', last_used_step = $2, updated_at = now() where id = $1
"""
STEP_UP_SESSION = "update auth.sessions set aal = 'aal2', amr = $2::jsonb, updated_at = now() where id = $1"
DELETE_FACTOR = "delete from auth.mfa_factors where id = $1 and user_id = $2 returning status"
LIST_FACTORS = """
select id, coalesce(friendly_name, '') as friendly_name, factor_type, status, created_at, updated_at
from auth.mfa_factors where user_id = $1 order by created_at
"""


def _session_id(claims: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(claims.get("session_id")))
    except ValueError:
        raise errors.AuthError(401, errors.SESSION_NOT_FOUND, "MFA needs a token of a signed-in session") from None


def _factor_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise errors.AuthError(404, "mfa_factor_not_found", "Factor not found") from None


async def enroll(ctx: Context, claims: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    if body.get("factor_type") != "totp":
        raise errors.AuthError(422, "mfa_phone_enroll_not_enabled" if body.get("factor_type") == "phone"
                               else errors.VALIDATION_FAILED, "Only TOTP factors are supported")
    name = string(body, "friendly_name")
    issuer = string(body, "issuer") or urlsplit(ctx.settings.auth_site_url or ctx.settings.api_url).hostname
    async with store.transaction(ctx.pool) as conn:
        user = await current(conn, claims)
        counts = await conn.fetchrow(COUNT_FACTORS, user["id"])
        if counts["verified"] and claims.get("aal") != "aal2":
            raise errors.AuthError(422, "insufficient_aal", "AAL2 required to enroll a new factor")
        if counts["other"] >= MAX_UNVERIFIED:
            raise errors.AuthError(422, "too_many_enrolled_mfa_factors", "Too many unverified factors")
        secret = pyotp.random_base32()
        try:
            factor_id = await conn.fetchval(INSERT_FACTOR, user["id"], name, secret)
        except asyncpg.UniqueViolationError:
            raise errors.AuthError(422, "mfa_factor_name_conflict",
                                   f"A factor with the friendly name {name!r} already exists") from None
    uri = pyotp.TOTP(secret).provisioning_uri(name=user["email"] or str(user["id"]), issuer_name=issuer)
    return {"id": str(factor_id), "type": "totp", "friendly_name": name or "",
            "totp": {"qr_code": segno.make(uri, error="m").svg_inline(scale=4), "secret": secret, "uri": uri}}


async def challenge(ctx: Context, claims: dict[str, Any], factor: str) -> dict[str, Any]:
    factor_id = _factor_id(factor)
    async with store.transaction(ctx.pool) as conn:
        user = await current(conn, claims)
        if await conn.fetchrow(SELECT_FACTOR, factor_id, user["id"]) is None:
            raise errors.AuthError(404, "mfa_factor_not_found", "Factor not found")
        row = await conn.fetchrow(INSERT_CHALLENGE, factor_id, ctx.ip, CHALLENGE_LIFETIME)
    return {"id": str(row["id"]), "type": "totp", "expires_at": row["expires_at"]}


async def verify(ctx: Context, claims: dict[str, Any], factor: str, body: dict[str, Any]) -> dict[str, Any]:
    factor_id = _factor_id(factor)
    session_id = _session_id(claims)
    code, challenge_id = string(body, "code"), string(body, "challenge_id")
    if not code or not challenge_id:
        raise errors.bad_request("MFA verification needs challenge_id and code")
    await ratelimit.hit(ctx.pool, ctx.settings, "mfa", ctx.ip, str(factor_id))
    async with store.transaction(ctx.pool) as conn:
        user = await current(conn, claims)
        row = await conn.fetchrow(SELECT_FACTOR, factor_id, user["id"])
        if row is None:
            raise errors.AuthError(404, "mfa_factor_not_found", "Factor not found")
        try:
            challenge_uuid = uuid.UUID(challenge_id)
        except ValueError:
            challenge_uuid = None
        if challenge_uuid is None or await conn.fetchval(TAKE_CHALLENGE, challenge_uuid, factor_id,
                                                         CHALLENGE_LIFETIME) is None:
            raise errors.AuthError(422, "mfa_challenge_expired", "MFA challenge has expired or was used")
        step = _accepted_step(row["secret"], code.strip(), row["last_used_step"])
        if step is None:
            metrics.count("mfa_failed")
            raise errors.AuthError(422, "mfa_verification_failed", "Invalid TOTP code entered")
        await conn.execute(ACCEPT_CODE, factor_id, step)
        metrics.count("mfa_verified")
        await audit.record(conn, "mfa_verified", user["id"], session_id=session_id, ip=ctx.ip, factor=str(factor_id))
        session = await conn.fetchrow(SELECT_SESSION, session_id, user["id"])
        if session is None:
            raise errors.AuthError(403, errors.SESSION_NOT_FOUND, "Session from session_id claim in JWT does not exist")
        amr = [*load_json(session["amr"]), {"method": "totp", "timestamp": int(time.time())}]
        await conn.execute(STEP_UP_SESSION, session_id, dump_json(amr))
        user = await users.by_id(conn, user["id"])
        return await sessions.step_up(conn, ctx.settings, ctx.signer, user, session_id, amr)


def _accepted_step(secret: str, code: str, last_used: int | None) -> int | None:
    """The time step `code` belongs to (now, or one step either side), unless that step was used already."""
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    now = int(time.time())
    for offset in (0, -1, 1):
        step = now // totp.interval + offset
        if totp.at(step * totp.interval) == code:
            return step if last_used is None or step > last_used else None
    return None


async def unenroll(ctx: Context, claims: dict[str, Any], factor: str) -> dict[str, Any]:
    factor_id = _factor_id(factor)
    async with store.transaction(ctx.pool) as conn:
        user = await current(conn, claims)
        row = await conn.fetchrow(SELECT_FACTOR, factor_id, user["id"])
        if row is None:
            raise errors.AuthError(404, "mfa_factor_not_found", "Factor not found")
        if row["status"] == "verified" and claims.get("aal") != "aal2":
            raise errors.AuthError(422, "insufficient_aal", "AAL2 required to unenroll verified factor")
        await conn.execute(DELETE_FACTOR, factor_id, user["id"])
        await audit.record(conn, "mfa_unenrolled", user["id"], session_id=claims.get("session_id"), ip=ctx.ip,
                           factor=str(factor_id))
    return {"id": str(factor_id)}


async def admin_list(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[dict[str, Any]]:
    return [{"id": str(r["id"]), "friendly_name": r["friendly_name"], "factor_type": r["factor_type"],
             "status": r["status"], "created_at": users.time_json(r["created_at"]),
             "updated_at": users.time_json(r["updated_at"])} for r in await conn.fetch(LIST_FACTORS, user_id)]


async def admin_delete(conn: asyncpg.Connection, user_id: uuid.UUID, factor: str) -> dict[str, Any]:
    factor_id = _factor_id(factor)
    if await conn.fetchval(DELETE_FACTOR, factor_id, user_id) is None:
        raise errors.AuthError(404, "mfa_factor_not_found", "Factor not found")
    return {"id": str(factor_id)}
