"""The admin API (service role only): create, list, read, update and delete users; their device sessions."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tuskbase.auth import audit, errors, metrics, mfa, otp, passwords, sessions, store, users
from tuskbase.auth.context import Context, string
from tuskbase.auth.store import dump_json, load_json
from tuskbase.tokens import REQUEST_ROLES

COUNT_USERS = "select count(*) from auth.users where deleted_at is null"
PAGE_USERS = ("select " + users.USER_COLUMNS + " from auth.users where deleted_at is null "
              "order by created_at, id limit $1 offset $2")
UPDATE_USER = """
update auth.users set
  email = coalesce($2, email),
  email_confirmed_at = case when $3 then coalesce(email_confirmed_at, now()) when $2 is not null then null
                            else email_confirmed_at end,
  encrypted_password = coalesce($4, encrypted_password),
  raw_user_meta_data = coalesce($5::jsonb, raw_user_meta_data),
  raw_app_meta_data = coalesce($6::jsonb, raw_app_meta_data),
  role = coalesce($7, role),
  banned_until = case when $8 then $9 else banned_until end,
  is_anonymous = case when $2 is not null then false else is_anonymous end,
  updated_at = now()
where id = $1 and deleted_at is null
"""
SET_PHONE = """
update auth.users set phone = $2, phone_confirmed_at = case when $3 then now() end, is_anonymous = false,
  updated_at = now()
where id = $1
"""
HARD_DELETE = "delete from auth.users where id = $1"
SOFT_DELETE = """
update auth.users set deleted_at = now(), email = null, phone = null, encrypted_password = null, updated_at = now()
where id = $1 and deleted_at is null
"""
DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def ban_duration(value: Any) -> timedelta | None:
    """Supabase's `ban_duration`: `none` lifts a ban, else a Go duration such as `24h` or `1h30m`."""
    if value == "none":
        return None
    if not isinstance(value, str) or not value or DURATION.sub("", value) != "":
        raise errors.bad_request("invalid format for ban duration: use a duration such as 24h or none")
    return timedelta(seconds=sum(float(n) * UNITS[u] for n, u in DURATION.findall(value)))


def _role(body: dict[str, Any]) -> str | None:
    role = string(body, "role")
    if role is not None and role not in REQUEST_ROLES:
        raise errors.bad_request(f"role must be one of {', '.join(sorted(REQUEST_ROLES))}")
    return role


async def create(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    email, phone = string(body, "email"), string(body, "phone")
    email = users.normalize_email(email) if email else None
    phone = users.normalize_phone(phone) if phone else None
    password = body.get("password")
    password_hash = None
    if password is not None:
        password_hash = await passwords.hash_password(passwords.check_strength(ctx.settings, password))
    elif body.get("password_hash") is not None:
        password_hash = passwords.check_imported_hash(body["password_hash"])
    try:
        user_id = uuid.UUID(str(body["id"])) if body.get("id") else None
    except ValueError:
        raise errors.bad_request("id must be a UUID") from None
    app_metadata = users.metadata(body.get("app_metadata"), "app_metadata")
    user_metadata = users.metadata(body.get("user_metadata") or body.get("data"), "user_metadata")
    role = _role(body) or "authenticated"
    async with store.transaction(ctx.pool) as conn:
        user = await users.create(conn, email=email, phone=phone, password_hash=password_hash,
                                  email_confirmed=bool(body.get("email_confirm")),
                                  phone_confirmed=bool(body.get("phone_confirm")), user_metadata=user_metadata,
                                  app_metadata=app_metadata, role=role, user_id=user_id,
                                  provider="email" if email or not phone else "phone",
                                  anonymous=email is None and phone is None)
        await audit.record(conn, "user_created", user["id"], ip=ctx.ip, by="admin")
        if body.get("ban_duration") not in (None, "none"):
            await _update(conn, user["id"], {"ban_duration": body["ban_duration"]}, None)
        return users.to_json(await users.by_id(conn, user["id"]))


async def list_users(ctx: Context, page: int, per_page: int) -> tuple[dict[str, Any], int]:
    async with store.transaction(ctx.pool) as conn:
        total = await conn.fetchval(COUNT_USERS)
        rows = await conn.fetch(PAGE_USERS, per_page, (page - 1) * per_page)
        return {"users": [users.to_json(r) for r in rows], "aud": "authenticated"}, total


async def get(ctx: Context, user_id: str) -> dict[str, Any]:
    async with store.transaction(ctx.pool) as conn:
        return users.to_json(await _existing(conn, user_id))


async def _existing(conn: asyncpg.Connection, user_id: str) -> asyncpg.Record:
    user = await users.by_id(conn, users.parse_uuid(user_id))
    if user is None:
        raise errors.AuthError(404, errors.USER_NOT_FOUND, "User not found")
    return user


async def update(ctx: Context, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
    password = body.get("password")
    new_hash = None
    if password is not None:
        new_hash = await passwords.hash_password(passwords.check_strength(ctx.settings, password))
    elif body.get("password_hash") is not None:
        new_hash = passwords.check_imported_hash(body["password_hash"])
    async with store.transaction(ctx.pool) as conn:
        user = await _existing(conn, user_id)
        await _update(conn, user["id"], body, new_hash, user)
        return users.to_json(await users.by_id(conn, user["id"]))


async def _update(conn: asyncpg.Connection, user_id: uuid.UUID, body: dict[str, Any], new_hash: str | None,
                  user: asyncpg.Record | None = None) -> None:
    user = user or await users.by_id(conn, user_id)
    email = users.normalize_email(body["email"]) if string(body, "email") else None
    phone = users.normalize_phone(body["phone"]) if string(body, "phone") else None
    user_meta = app_meta = None
    if body.get("user_metadata") is not None:
        given = users.metadata(body["user_metadata"], "user_metadata")
        user_meta = dump_json({**load_json(user["user_meta"]), **given})
    if body.get("app_metadata") is not None:
        given = users.metadata(body["app_metadata"], "app_metadata")
        app_meta = dump_json({**load_json(user["app_meta"]), **given})
    set_ban = "ban_duration" in body
    banned_until = None
    if set_ban:
        duration = ban_duration(body["ban_duration"])
        banned_until = datetime.now(UTC) + duration if duration else None
    try:
        await conn.execute(UPDATE_USER, user_id, email, bool(body.get("email_confirm")) or (
            email is not None and user["email_confirmed_at"] is not None and email == user["email"]),
            new_hash, user_meta, app_meta, _role(body), set_ban, banned_until)
    except asyncpg.UniqueViolationError:
        raise errors.AuthError(422, errors.EMAIL_EXISTS,
                               "A user with this email address has already been registered") from None
    if phone is not None:
        try:
            await conn.execute(SET_PHONE, user_id, phone, bool(body.get("phone_confirm")))
        except asyncpg.UniqueViolationError:
            raise errors.AuthError(422, "phone_exists", "Phone number already registered by another user") from None
        if body.get("phone_confirm"):
            await conn.execute(otp.UPSERT_PHONE_IDENTITY, user_id, phone)
            await conn.execute(users.ADD_PROVIDER, user_id, "phone")
    if email is not None and email != user["email"]:
        await conn.execute(users.INSERT_IDENTITY, str(user_id), user_id, "email", dump_json(
            {"sub": str(user_id), "email": email, "email_verified": bool(body.get("email_confirm")),
             "phone_verified": False}))
        await conn.execute(users.ADD_PROVIDER, user_id, "email")
    if set_ban and banned_until is not None:
        # A ban ends every session at once: refresh tokens stop, session_is_active() turns false.
        await conn.execute(sessions.REVOKE_SESSIONS, user_id, None, None, "banned")
        await audit.record(conn, "user_banned", user_id, until=banned_until)


async def delete(ctx: Context, user_id: str, body: dict[str, Any]) -> None:
    async with store.transaction(ctx.pool) as conn:
        user = await _existing(conn, user_id)
        await audit.record(conn, "user_deleted", user["id"], ip=ctx.ip, soft=bool(body.get("should_soft_delete")))
        if body.get("should_soft_delete"):
            await conn.execute(sessions.REVOKE_SESSIONS, user["id"], None, None, "user_deleted")
            await conn.execute(SOFT_DELETE, user["id"])
        else:
            await conn.execute(HARD_DELETE, user["id"])


async def list_sessions(ctx: Context, user_id: str) -> list[dict[str, Any]]:
    async with store.transaction(ctx.pool) as conn:
        user = await _existing(conn, user_id)
        return await sessions.list_for(conn, user["id"], None)


async def revoke_session(ctx: Context, user_id: str, session_id: str) -> None:
    target = users.parse_uuid(session_id, "session")
    async with store.transaction(ctx.pool) as conn:
        user = await _existing(conn, user_id)
        if not await sessions.revoke(conn, user["id"], target, "revoked_by_admin"):
            raise errors.AuthError(404, errors.SESSION_NOT_FOUND, "Session not found")
        await audit.record(conn, "session_revoked", user["id"], session_id=target, ip=ctx.ip, by="admin")
    metrics.count("session_revoked")


async def revoke_all_sessions(ctx: Context, user_id: str) -> None:
    async with store.transaction(ctx.pool) as conn:
        user = await _existing(conn, user_id)
        await sessions.logout(conn, user["id"], None, "global")
        await audit.record(conn, "logout", user["id"], ip=ctx.ip, scope="global", by="admin")


async def list_factors(ctx: Context, user_id: str) -> list[dict[str, Any]]:
    async with store.transaction(ctx.pool) as conn:
        return await mfa.admin_list(conn, (await _existing(conn, user_id))["id"])


async def delete_factor(ctx: Context, user_id: str, factor_id: str) -> dict[str, Any]:
    async with store.transaction(ctx.pool) as conn:
        return await mfa.admin_delete(conn, (await _existing(conn, user_id))["id"], factor_id)
