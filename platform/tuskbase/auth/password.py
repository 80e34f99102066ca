"""POST /token?grant_type=password: sign in with email (or phone) and password."""

from __future__ import annotations

from typing import Any

from tuskbase.auth import captcha, errors, metrics, passwords, ratelimit, sessions, store, users
from tuskbase.auth.context import Context, string


def invalid() -> errors.AuthError:
    return errors.AuthError(400, errors.INVALID_CREDENTIALS, "Invalid login credentials")
UPDATE_HASH = "update auth.users set encrypted_password = $2 where id = $1"


async def sign_in(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    await captcha.check(ctx, body)
    email, phone, password = string(body, "email"), string(body, "phone"), body.get("password")
    if phone and not email and not ctx.settings.auth_phone_enabled:
        raise errors.AuthError(400, errors.PHONE_PROVIDER_DISABLED, "Phone logins are disabled")
    if not (email or phone) or not isinstance(password, str) or not password:
        raise errors.bad_request("missing email or phone and password")
    identifier = email.strip().lower() if email else users.normalize_phone(phone)
    await ratelimit.hit(ctx.pool, ctx.settings, "password", ctx.ip, identifier)
    async with store.transaction(ctx.pool) as conn:
        user = await (users.by_email if email else users.by_phone)(conn, identifier)
    encoded = user["encrypted_password"] if user is not None else None
    # Always one argon2 verification, so the answer's timing does not tell which emails have accounts.
    if not await passwords.verify_password(encoded, password) or user is None:
        metrics.count("sign_in_failed")
        raise invalid()
    if email and user["email_confirmed_at"] is None:
        raise errors.AuthError(400, errors.EMAIL_NOT_CONFIRMED, "Email not confirmed")
    if not email and user["phone_confirmed_at"] is None:
        raise errors.AuthError(400, "phone_not_confirmed", "Phone not confirmed")
    rehash = passwords.needs_rehash(encoded)  # type: ignore[arg-type]
    new_hash = await passwords.hash_password(password) if rehash else None
    async with store.transaction(ctx.pool) as conn:
        if new_hash:
            await conn.execute(UPDATE_HASH, user["id"], new_hash)
        session = await sessions.sign_in(conn, ctx.settings, ctx.signer, user, "password", ctx.device)
    # A password set before the rule was tightened still signs in; the answer says why to change it.
    reasons, message = passwords.weakness(ctx.settings, password)
    if reasons:
        session["weak_password"] = {"reasons": reasons, "message": message}
    return session
