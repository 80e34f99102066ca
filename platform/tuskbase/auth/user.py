"""The signed-in user: GET/PUT /user, POST /logout, and the user's own device sessions."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from tuskbase.auth import audit, errors, metrics, otp, passwords, ratelimit, redirects, sessions, store, users
from tuskbase.auth.context import Context, string
from tuskbase.auth.store import dump_json, load_json

UPDATE_USER_META = "update auth.users set raw_user_meta_data = $2::jsonb, updated_at = now() where id = $1"
UPDATE_PASSWORD = "update auth.users set encrypted_password = $2, updated_at = now() where id = $1"
SET_EMAIL = """
update auth.users set email = $2, email_confirmed_at = now(), email_change = null, is_anonymous = false,
  updated_at = now()
where id = $1
"""
SET_PHONE_CHANGE = "update auth.users set phone_change = $2, updated_at = now() where id = $1"
SET_EMAIL_CHANGE = "update auth.users set email_change = $2, updated_at = now() where id = $1"
HAS_EMAIL_IDENTITY = "select exists (select 1 from auth.identities where user_id = $1 and provider = 'email')"
SCOPES = ("global", "local", "others")
RECENT_SIGN_IN = 24 * 3600  # a session this young may change the password without reauthenticating
SEEN = "update auth.sessions set last_seen_at = now() where id = $1 and last_seen_at < now() - interval '5 minutes'"
SESSION_AGE = "select extract(epoch from now() - created_at) from auth.sessions where id = $1"
COUNT_IDENTITIES = """
select count(*), count(*) filter (where id = $2) as mine from auth.identities where user_id = $1
"""
DELETE_IDENTITY = "delete from auth.identities where id = $1 and user_id = $2 returning provider"
REFRESH_PROVIDERS = """
update auth.users set raw_app_meta_data = raw_app_meta_data || jsonb_build_object(
  'providers', (select coalesce(jsonb_agg(distinct provider), '[]') from auth.identities where user_id = $1),
  'provider', case when raw_app_meta_data ->> 'provider' = $2
                   then (select provider from auth.identities where user_id = $1 order by created_at limit 1)
                   else raw_app_meta_data ->> 'provider' end),
  updated_at = now()
where id = $1
"""


async def current(conn: asyncpg.Connection, claims: dict[str, Any]) -> asyncpg.Record:
    """The user a token names, refusing tokens of revoked sessions (a lost device) and deleted users."""
    session_id = claims.get("session_id")
    if session_id and not await sessions.is_active(conn, str(session_id), str(claims["sub"])):
        raise errors.AuthError(403, errors.SESSION_NOT_FOUND, "Session from session_id claim in JWT does not exist")
    user = await users.by_id(conn, claims["sub"])
    if user is None:
        raise errors.AuthError(403, errors.USER_NOT_FOUND, "User from sub claim in JWT does not exist")
    return user


async def get(ctx: Context, claims: dict[str, Any]) -> dict[str, Any]:
    async with store.transaction(ctx.pool) as conn:
        user = await current(conn, claims)
        if claims.get("session_id"):
            # Apps call GET /user when they start: the device list shows it, at most one write per 5 minutes.
            await conn.execute(SEEN, uuid.UUID(str(claims["session_id"])))
        return users.to_json(user)


def merge_metadata(old: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Supabase's rule: keys given replace, keys given as null are removed, others stay."""
    merged = {**old, **update}
    return {k: v for k, v in merged.items() if v is not None}


async def update(ctx: Context, claims: dict[str, Any], body: dict[str, Any], redirect_to: str | None) -> dict[str, Any]:
    settings = ctx.settings
    email, password, phone = string(body, "email"), body.get("password"), string(body, "phone")
    if phone is not None:
        if not settings.auth_phone_enabled:
            raise errors.AuthError(400, errors.PHONE_PROVIDER_DISABLED, "Phone updates are disabled")
        phone = users.normalize_phone(phone)
    data = users.metadata(body.get("data")) if "data" in body else None
    new_hash = None
    if password is not None:
        password = passwords.check_strength(settings, password)
        new_hash = await passwords.hash_password(password)
    if email is not None:
        email = users.normalize_email(email)
    outgoing = outgoing_current = None
    outgoing_sms = None
    async with store.transaction(ctx.pool) as conn:
        user = await current(conn, claims)
        user_id = user["id"]
        if data is not None:
            await conn.execute(UPDATE_USER_META, user_id, dump_json(merge_metadata(load_json(user["user_meta"]), data)))
        if new_hash is not None:
            await _may_change_password(conn, settings, claims, user, body)
            if user["encrypted_password"] and await passwords.verify_password(user["encrypted_password"], password):
                raise errors.AuthError(422, errors.SAME_PASSWORD,
                                       "New password should be different from the old password.")
            await conn.execute(UPDATE_PASSWORD, user_id, new_hash)
            await audit.record(conn, "password_changed", user_id, session_id=claims.get("session_id"), ip=ctx.ip)
            # A new password signs out every other device (the reason to change it may be a stolen one).
            current_session = claims.get("session_id")
            await sessions.logout(conn, user_id, uuid.UUID(current_session) if current_session else None, "others")
        if email is not None and email != user["email"]:
            other = await users.by_email(conn, email)
            if other is not None and other["id"] != user_id:
                raise errors.AuthError(422, errors.EMAIL_EXISTS,
                                       "A user with this email address has already been registered")
            if settings.auth_email_autoconfirm:
                await conn.execute(SET_EMAIL, user_id, email)
                await audit.record(conn, "email_changed", user_id, session_id=claims.get("session_id"), ip=ctx.ip,
                                   old=user["email"], new=email)
                await _ensure_email_identity(conn, user_id, email)
            else:
                await conn.execute(SET_EMAIL_CHANGE, user_id, email)
                target = redirects.resolve(settings, redirect_to)
                outgoing = await otp.issue(conn, ctx, user_id, "email_change", email, target)
                if settings.auth_secure_email_change and user["email"] and user["email_confirmed_at"]:
                    outgoing_current = await otp.issue(conn, ctx, user_id, "email_change_current", user["email"],
                                                       target)
        if phone is not None and phone != user["phone"]:
            other = await users.by_phone(conn, phone)
            if other is not None and other["id"] != user_id:
                raise errors.AuthError(422, "phone_exists", "Phone number already registered by another user")
            await conn.execute(SET_PHONE_CHANGE, user_id, phone)
            outgoing_sms = await otp.issue_sms(conn, ctx, user_id, "phone_change", phone)
        answer = users.to_json(await users.by_id(conn, user_id))
    await otp.send(ctx, outgoing)
    await otp.send(ctx, outgoing_current)
    await otp.send(ctx, outgoing_sms)
    return answer


async def _may_change_password(conn: asyncpg.Connection, settings: Any, claims: dict[str, Any],
                               user: asyncpg.Record, body: dict[str, Any]) -> None:
    """The current password, when given, must match; with secure password change on, a session older than a
    day must also prove it is the user (current password or the code from GET /reauthenticate)."""
    current_password, nonce = string(body, "current_password"), string(body, "nonce")
    if current_password is not None:
        if not await passwords.verify_password(user["encrypted_password"], current_password):
            raise errors.AuthError(400, errors.INVALID_CREDENTIALS, "Current password is incorrect")
        return
    if nonce is not None:
        hashed = otp.token_hash(user["email"] or "", nonce.strip())
        if await conn.fetchval(otp.TAKE_REAUTHENTICATION, user["id"], hashed) is None:
            raise errors.AuthError(400, "reauthentication_not_valid", "Verification code not found or expired")
        return
    if not settings.auth_secure_password_change or not user["encrypted_password"]:
        return
    session_id = claims.get("session_id")
    age = await conn.fetchval(SESSION_AGE, uuid.UUID(session_id)) if session_id else None
    if age is None or age > RECENT_SIGN_IN:
        raise errors.AuthError(400, "reauthentication_needed", "Password update requires reauthentication")


async def reauthenticate(ctx: Context, claims: dict[str, Any]) -> None:
    """GET /reauthenticate: mail a code that authorises a password change from this session."""
    await ratelimit.hit(ctx.pool, ctx.settings, "reauthenticate", ctx.ip, str(claims["sub"]))
    async with store.transaction(ctx.pool) as conn:
        user = await current(conn, claims)
        if not user["email"]:
            raise errors.AuthError(422, "reauth_nonce_missing", "Reauthentication needs an email address")
        outgoing = await otp.issue(conn, ctx, user["id"], "reauthentication", user["email"], "")
    await otp.send(ctx, outgoing)


async def _ensure_email_identity(conn: asyncpg.Connection, user_id: uuid.UUID, email: str) -> None:
    if await conn.fetchval(HAS_EMAIL_IDENTITY, user_id):
        await conn.execute(otp.UPDATE_EMAIL_IDENTITY, user_id, email)
        return
    await conn.execute(users.INSERT_IDENTITY, str(user_id), user_id, "email", dump_json(
        {"sub": str(user_id), "email": email, "email_verified": True, "phone_verified": False}))
    await conn.execute(users.ADD_PROVIDER, user_id, "email")


async def logout(ctx: Context, claims: dict[str, Any], scope: str | None) -> None:
    scope = scope or "global"
    if scope not in SCOPES:
        raise errors.bad_request(f"Unsupported logout scope {scope!r}")
    session_id = claims.get("session_id")
    async with store.transaction(ctx.pool) as conn:
        user = await current(conn, claims)
        await sessions.logout(conn, user["id"], uuid.UUID(session_id) if session_id else None, scope)
        await audit.record(conn, "logout", user["id"], session_id=session_id, ip=ctx.ip, scope=scope)
    metrics.count("logout")


async def list_sessions(ctx: Context, claims: dict[str, Any]) -> list[dict[str, Any]]:
    async with store.transaction(ctx.pool) as conn:
        user = await current(conn, claims)
        return await sessions.list_for(conn, user["id"], claims.get("session_id"))


async def revoke_session(ctx: Context, claims: dict[str, Any], session_id: str) -> None:
    target = users.parse_uuid(session_id, "session")
    async with store.transaction(ctx.pool) as conn:
        user = await current(conn, claims)
        if not await sessions.revoke(conn, user["id"], target, "revoked_by_user"):
            raise errors.AuthError(404, errors.SESSION_NOT_FOUND, "Session not found")
        await audit.record(conn, "session_revoked", user["id"], session_id=target, ip=ctx.ip, by="user",
                           from_session=claims.get("session_id"))
    metrics.count("session_revoked")


async def unlink_identity(ctx: Context, claims: dict[str, Any], identity_id: str) -> None:
    """DELETE /user/identities/{id}: detach a provider identity, never the last one (the user could not sign in)."""
    try:
        target = uuid.UUID(identity_id)
    except ValueError:
        raise errors.AuthError(404, "identity_not_found", "Identity not found") from None
    async with store.transaction(ctx.pool) as conn:
        user = await current(conn, claims)
        counts = await conn.fetchrow(COUNT_IDENTITIES, user["id"], target)
        if not counts["mine"]:
            raise errors.AuthError(404, "identity_not_found", "Identity not found")
        if counts["count"] <= 1:
            raise errors.AuthError(422, "single_identity_not_deletable", "User must have at least 1 identity")
        provider = await conn.fetchval(DELETE_IDENTITY, target, user["id"])
        await audit.record(conn, "identity_unlinked", user["id"], ip=ctx.ip, provider=provider)
        await conn.execute(REFRESH_PROVIDERS, user["id"], provider)
