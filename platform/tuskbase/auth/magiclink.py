"""Passwordless and recovery mails: POST /otp (email code + magic link), /recover, /resend, and the admin's
/invite and /admin/generate_link. Answers never say whether an address has an account (except where Supabase does)."""

from __future__ import annotations

from typing import Any

from tuskbase.auth import captcha, errors, otp, passwords, pkce, ratelimit, redirects, store, users
from tuskbase.auth.context import Context, string

USER_BY_EMAIL_CHANGE = "select id from auth.users where email_change = $1 and deleted_at is null"


def _email(body: dict[str, Any]) -> str:
    if string(body, "phone") and not string(body, "email"):
        raise errors.AuthError(400, errors.PHONE_PROVIDER_DISABLED, "Phone logins are disabled")
    email = string(body, "email")
    if not email:
        raise errors.bad_request("An email address is required")
    return users.normalize_email(email)


async def send(ctx: Context, body: dict[str, Any], redirect_to: str | None) -> None:
    """POST /otp: mail a code and a link (or text a code) that sign the user in, creating the user when allowed."""
    await captcha.check(ctx, body)
    if string(body, "phone") and not string(body, "email") and ctx.settings.auth_phone_enabled:
        await send_sms_code(ctx, body)
        return
    email = _email(body)
    await ratelimit.hit(ctx.pool, ctx.settings, "otp", ctx.ip, email)
    data = users.metadata(body.get("data"))
    create_user = body.get("create_user", True) is not False
    challenge = pkce.challenge_of(body)
    target = redirects.resolve(ctx.settings, redirect_to)
    async with store.transaction(ctx.pool) as conn:
        user = await users.by_email(conn, email)
        if user is None:
            if not create_user or not ctx.settings.auth_signup_enabled:
                raise errors.AuthError(422, "otp_disabled", "Signups not allowed for otp")
            user = await users.create(conn, email=email, user_metadata=data, confirmation_sent=True)
        if users.is_banned(user):
            raise errors.AuthError(400, errors.USER_BANNED, "User is banned")
        token_type = "magiclink" if user["email_confirmed_at"] is not None else "confirmation"
        flow_id = await pkce.start(conn, challenge, "email", "magiclink", user_id=user["id"],
                                   redirect_to=target) if challenge else None
        outgoing = await otp.issue(conn, ctx, user["id"], token_type, email, target, flow_id)
    await otp.send(ctx, outgoing)


async def send_sms_code(ctx: Context, body: dict[str, Any]) -> None:
    phone = users.normalize_phone(body.get("phone"))
    await ratelimit.hit(ctx.pool, ctx.settings, "otp", ctx.ip, phone)
    create_user = body.get("create_user", True) is not False
    async with store.transaction(ctx.pool) as conn:
        user = await users.by_phone(conn, phone)
        if user is None:
            if not create_user or not ctx.settings.auth_signup_enabled:
                raise errors.AuthError(422, "otp_disabled", "Signups not allowed for otp")
            user = await users.create(conn, phone=phone, provider="phone",
                                      user_metadata=users.metadata(body.get("data")))
        if users.is_banned(user):
            raise errors.AuthError(400, errors.USER_BANNED, "User is banned")
        outgoing = await otp.issue_sms(conn, ctx, user["id"], "sms", phone)
    await otp.send(ctx, outgoing)


async def recover(ctx: Context, body: dict[str, Any], redirect_to: str | None) -> None:
    """POST /recover: mail a recovery code and link if the address has an account (same answer either way)."""
    await captcha.check(ctx, body)
    email = _email(body)
    await ratelimit.hit(ctx.pool, ctx.settings, "recover", ctx.ip, email)
    challenge = pkce.challenge_of(body)
    target = redirects.resolve(ctx.settings, redirect_to)
    outgoing = None
    async with store.transaction(ctx.pool) as conn:
        user = await users.by_email(conn, email)
        if user is not None and not users.is_banned(user):
            flow_id = await pkce.start(conn, challenge, "email", "recovery", user_id=user["id"],
                                       redirect_to=target) if challenge else None
            outgoing = await otp.issue(conn, ctx, user["id"], "recovery", email, target, flow_id)
    await otp.send(ctx, outgoing)


async def resend(ctx: Context, body: dict[str, Any], redirect_to: str | None) -> None:
    """POST /resend: the sign-up confirmation or the email-change mail (or the SMS code) again."""
    await captcha.check(ctx, body)
    if body.get("type") in ("sms", "phone_change"):
        await resend_sms(ctx, body)
        return
    email = _email(body)
    kind = body.get("type")
    if kind not in ("signup", "email_change"):
        raise errors.bad_request("Missing one of these types: signup, email_change")
    await ratelimit.hit(ctx.pool, ctx.settings, "resend", ctx.ip, email)
    target = redirects.resolve(ctx.settings, redirect_to)
    outgoing = None
    async with store.transaction(ctx.pool) as conn:
        if kind == "signup":
            user = await users.by_email(conn, email)
            if user is not None and user["email_confirmed_at"] is None:
                outgoing = await otp.issue(conn, ctx, user["id"], "confirmation", email, target)
        else:
            user_id = await conn.fetchval(USER_BY_EMAIL_CHANGE, email)
            if user_id is not None:
                outgoing = await otp.issue(conn, ctx, user_id, "email_change", email, target)
    await otp.send(ctx, outgoing)


async def invite(ctx: Context, body: dict[str, Any], redirect_to: str | None) -> dict[str, Any]:
    """POST /invite (service role): create the user and mail an invitation; accepting it signs them in."""
    email = _email(body)
    data = users.metadata(body.get("data"))
    target = redirects.resolve(ctx.settings, redirect_to)
    async with store.transaction(ctx.pool) as conn:
        user = await users.by_email(conn, email)
        if user is not None and user["email_confirmed_at"] is not None:
            raise errors.AuthError(422, errors.EMAIL_EXISTS,
                                   "A user with this email address has already been registered")
        if user is None:
            user = await users.create(conn, email=email, user_metadata=data)
        outgoing = await otp.issue(conn, ctx, user["id"], "invite", email, target)
        answer = users.to_json(await users.by_id(conn, user["id"]))
    await otp.send(ctx, outgoing)
    return answer


USER_BY_PHONE_CHANGE = "select id from auth.users where phone_change = $1 and deleted_at is null"


async def resend_sms(ctx: Context, body: dict[str, Any]) -> None:
    if not ctx.settings.auth_phone_enabled:
        raise errors.AuthError(400, errors.PHONE_PROVIDER_DISABLED, "Phone logins are disabled")
    phone = users.normalize_phone(body.get("phone"))
    await ratelimit.hit(ctx.pool, ctx.settings, "resend", ctx.ip, phone)
    outgoing = None
    async with store.transaction(ctx.pool) as conn:
        if body["type"] == "sms":
            user = await users.by_phone(conn, phone)
            if user is not None and user["phone_confirmed_at"] is None:
                outgoing = await otp.issue_sms(conn, ctx, user["id"], "sms", phone)
        else:
            user_id = await conn.fetchval(USER_BY_PHONE_CHANGE, phone)
            if user_id is not None:
                outgoing = await otp.issue_sms(conn, ctx, user_id, "phone_change", phone)
    await otp.send(ctx, outgoing)


LINK_TOKEN_TYPES = {"signup": "confirmation", "magiclink": "magiclink", "recovery": "recovery", "invite": "invite"}


async def generate_link(ctx: Context, body: dict[str, Any], redirect_to: str | None) -> dict[str, Any]:
    """POST /admin/generate_link: the code and link, returned instead of mailed (custom mail delivery)."""
    kind = body.get("type")
    if kind not in LINK_TOKEN_TYPES:
        raise errors.bad_request("Invalid link type: use signup, magiclink, recovery or invite")
    email = _email(body)
    data = users.metadata(body.get("data"))
    password_hash = None
    if kind == "signup":
        password_hash = await passwords.hash_password(passwords.check_strength(ctx.settings, body.get("password")))
    target = redirects.resolve(ctx.settings, redirect_to)
    async with store.transaction(ctx.pool) as conn:
        user = await users.by_email(conn, email)
        if user is None:
            if kind in ("magiclink", "recovery"):
                raise errors.AuthError(404, errors.USER_NOT_FOUND, "User with this email not found")
            user = await users.create(conn, email=email, password_hash=password_hash, user_metadata=data)
        elif kind in ("signup", "invite"):
            raise errors.AuthError(422, errors.EMAIL_EXISTS,
                                   "A user with this email address has already been registered")
        outgoing = await otp.issue(conn, ctx, user["id"], LINK_TOKEN_TYPES[kind], email, target)
        answer = users.to_json(await users.by_id(conn, user["id"]))
    return {**answer, "action_link": outgoing.link, "email_otp": outgoing.code, "hashed_token": outgoing.hashed,
            "redirect_to": target, "verification_type": kind}
