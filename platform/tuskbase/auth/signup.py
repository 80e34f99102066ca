"""POST /signup: email + password, or (no email and no phone) an anonymous user when enabled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from tuskbase.auth import (
    audit,
    captcha,
    errors,
    metrics,
    otp,
    passwords,
    pkce,
    ratelimit,
    redirects,
    sessions,
    store,
    users,
)
from tuskbase.auth.context import Context, string


async def signup(ctx: Context, body: dict[str, Any], redirect_to: str | None) -> dict[str, Any]:
    settings = ctx.settings
    await captcha.check(ctx, body)
    email, phone = string(body, "email"), string(body, "phone")
    data = users.metadata(body.get("data"))
    if phone and not email:
        return await phone_signup(ctx, phone, body, data)
    if not email:
        if body.get("password"):
            raise errors.bad_request("Signup requires a valid email")
        return await anonymous(ctx, data)
    if not settings.auth_signup_enabled:
        raise errors.AuthError(422, errors.SIGNUP_DISABLED, "Signups not allowed for this instance")
    email = users.normalize_email(email)
    await ratelimit.hit(ctx.pool, settings, "signup", ctx.ip, email)
    password = passwords.check_strength(settings, body.get("password"))
    challenge = pkce.challenge_of(body)
    password_hash = await passwords.hash_password(password)
    target = redirects.resolve(settings, redirect_to)
    async with store.transaction(ctx.pool) as conn:
        existing = await users.by_email(conn, email)
        if existing is not None and settings.auth_email_autoconfirm:
            raise errors.AuthError(422, errors.USER_ALREADY_EXISTS, "User already registered")
        if existing is not None:
            # With confirmation by mail, the answer must not tell who has an account (as Supabase): an
            # unconfirmed account gets its confirmation mail again, a confirmed one a look-alike user with no
            # identities and nothing is stored or sent.
            if existing["email_confirmed_at"] is not None:
                return _look_alike(email, data)
            user = existing
        else:
            metrics.count("signup")
            user = await users.create(conn, email=email, password_hash=password_hash,
                                      email_confirmed=settings.auth_email_autoconfirm, user_metadata=data,
                                      confirmation_sent=not settings.auth_email_autoconfirm)
            await audit.record(conn, "signup", user["id"], ip=ctx.ip, provider="email")
        if settings.auth_email_autoconfirm:
            return await sessions.sign_in(conn, settings, ctx.signer, user, "password", ctx.device)
        flow_id = await pkce.start(conn, challenge, "email", "email/signup", user_id=user["id"],
                                   redirect_to=target) if challenge else None
        outgoing = await otp.issue(conn, ctx, user["id"], "confirmation", email, target, flow_id)
        answer = users.to_json(await users.by_id(conn, user["id"]))
    await otp.send(ctx, outgoing)
    return answer


def _look_alike(email: str, data: dict[str, Any]) -> dict[str, Any]:
    now = users.time_json(datetime.now(UTC))
    return {"id": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated", "email": email, "phone": "",
            "confirmation_sent_at": now, "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": data, "identities": [], "created_at": now, "updated_at": now, "is_anonymous": False}


async def phone_signup(ctx: Context, raw_phone: str, body: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Phone + password: the user exists at once, signs in after confirming the SMS code (POST /verify type sms)."""
    settings = ctx.settings
    if not settings.auth_phone_enabled:
        raise errors.AuthError(400, errors.PHONE_PROVIDER_DISABLED, "Phone signups are disabled")
    if not settings.auth_signup_enabled:
        raise errors.AuthError(422, errors.SIGNUP_DISABLED, "Signups not allowed for this instance")
    phone = users.normalize_phone(raw_phone)
    await ratelimit.hit(ctx.pool, settings, "signup", ctx.ip, phone)
    password_hash = await passwords.hash_password(passwords.check_strength(settings, body.get("password")))
    async with store.transaction(ctx.pool) as conn:
        if await users.by_phone(conn, phone) is not None:
            raise errors.AuthError(422, errors.USER_ALREADY_EXISTS, "User already registered")
        metrics.count("signup")
        user = await users.create(conn, phone=phone, password_hash=password_hash, provider="phone",
                                  user_metadata=data)
        await audit.record(conn, "signup", user["id"], ip=ctx.ip, provider="phone")
        outgoing = await otp.issue_sms(conn, ctx, user["id"], "sms", phone)
        answer = users.to_json(await users.by_id(conn, user["id"]))
    await otp.send(ctx, outgoing)
    return answer


async def anonymous(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    if not ctx.settings.auth_anonymous_enabled:
        raise errors.AuthError(422, errors.ANONYMOUS_PROVIDER_DISABLED, "Anonymous sign-ins are disabled")
    await ratelimit.hit(ctx.pool, ctx.settings, "anonymous", ctx.ip, None)
    async with store.transaction(ctx.pool) as conn:
        user = await users.create(conn, anonymous=True, user_metadata=data)
        await audit.record(conn, "signup", user["id"], ip=ctx.ip, provider="anonymous")
        return await sessions.sign_in(conn, ctx.settings, ctx.signer, user, "anonymous", ctx.device)
