"""Mailed one-time codes and links: sign-up confirmation, magic link / email OTP, recovery, email change.

One token serves both ways in: the code typed into the app (`POST /verify {email, token, type}`) and the
link clicked in the mail (`GET /verify?token=<hash>&type=...`). As in Supabase, the stored token hash is
sha256(email || code) in hex, which is also the link's token. A new token of a type replaces the older one.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import asyncpg

from tuskbase.auth import audit, errors, mail, pkce, redirects, sessions, sms, users
from tuskbase.auth.context import Context
from tuskbase.auth.store import dump_json

UPSERT_TOKEN = """
insert into auth.one_time_tokens (user_id, token_type, token_hash, relates_to, flow_state_id, expires_at)
values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
on conflict (user_id, token_type) do update set token_hash = excluded.token_hash, relates_to = excluded.relates_to,
  flow_state_id = excluded.flow_state_id, created_at = now(), expires_at = excluded.expires_at
"""
TAKE_REAUTHENTICATION = """
delete from auth.one_time_tokens
where user_id = $1 and token_type = 'reauthentication' and token_hash = $2 and expires_at > now()
returning id
"""
TAKE_TOKEN = """
delete from auth.one_time_tokens
where token_hash = $1 and token_type = any($2::text[])
returning user_id, token_type, relates_to, flow_state_id, expires_at > now() as fresh
"""
MARK_SENT = {
    "confirmation": "update auth.users set confirmation_sent_at = now() where id = $1",
    "magiclink": "update auth.users set updated_at = now() where id = $1",
    "recovery": "update auth.users set recovery_sent_at = now() where id = $1",
    "email_change": "update auth.users set email_change_sent_at = now() where id = $1",
    "phone_change": "update auth.users set phone_change_sent_at = now() where id = $1",
    "invite": "update auth.users set invited_at = now() where id = $1",
}
CONFIRM_EMAIL = """
update auth.users set email_confirmed_at = coalesce(email_confirmed_at, now()), updated_at = now() where id = $1
"""
APPLY_EMAIL_CHANGE = """
update auth.users set email = email_change, email_change = null, email_change_sent_at = null,
  email_confirmed_at = now(), is_anonymous = false, updated_at = now()
where id = $1 and email_change = $2
"""
UPDATE_EMAIL_IDENTITY = """
update auth.identities set identity_data = identity_data || jsonb_build_object('email', $2::text,
  'email_verified', true), updated_at = now()
where user_id = $1 and provider = 'email'
"""
CONFIRM_PHONE = """
update auth.users set phone_confirmed_at = coalesce(phone_confirmed_at, now()), updated_at = now() where id = $1
"""
APPLY_PHONE_CHANGE = """
update auth.users set phone = phone_change, phone_change = null, phone_change_sent_at = null,
  phone_confirmed_at = now(), is_anonymous = false, updated_at = now()
where id = $1 and phone_change = $2
"""
UPSERT_PHONE_IDENTITY = """
insert into auth.identities (provider_id, user_id, provider, identity_data, last_sign_in_at)
values ($1::uuid::text, $1, 'phone', jsonb_build_object('sub', $1::uuid::text, 'phone', $2::text,
        'email_verified', false, 'phone_verified', true), now())
on conflict (provider, provider_id) do update set identity_data = excluded.identity_data, updated_at = now()
"""
OTHER_PENDING = """
select exists (select 1 from auth.one_time_tokens where user_id = $1 and token_type = $2 and expires_at > now())
"""
PENDING_EMAIL = "select email_change from auth.users where id = $1"
FIRST_OF_TWO = "Confirmation link accepted. Please proceed to confirm link sent to the other email"
HAS_EMAIL_IDENTITY = "select exists (select 1 from auth.identities where user_id = $1 and provider = 'email')"

# `type` sent to /verify -> token types it may consume, and the amr method of the session it opens.
VERIFY_TYPES = {
    "signup": (["confirmation"], "otp"),
    "email": (["confirmation", "magiclink"], "otp"),
    "magiclink": (["magiclink", "confirmation"], "magiclink"),
    "recovery": (["recovery"], "recovery"),
    "invite": (["invite"], "invite"),
    "email_change": (["email_change", "email_change_current"], "email_change"),
    "sms": (["sms"], "otp"),
    "phone_change": (["phone_change"], "phone_change"),
}
LINK_TYPE = {"confirmation": "signup", "magiclink": "magiclink", "recovery": "recovery",
             "email_change": "email_change", "email_change_current": "email_change", "invite": "invite",
             "reauthentication": "reauthentication"}
SUBJECTS = {
    "confirmation": "Confirm your signup",
    "magiclink": "Your sign-in code",
    "recovery": "Reset your password",
    "email_change": "Confirm your new email address",
    "email_change_current": "Confirm the change of your email address",
    "invite": "You have been invited",
    "reauthentication": "Confirm it is you",
}


def token_hash(email: str, code: str) -> str:
    return hashlib.sha256((email + code).encode()).hexdigest()


@dataclass(frozen=True)
class Outgoing:
    """A mail to send once the transaction that created its token has committed."""

    recipient: str
    subject: str
    body: str
    code: str
    hashed: str
    link: str
    html: str | None = None


async def issue(conn: asyncpg.Connection, ctx: Context, user_id: uuid.UUID, token_type: str, email: str,
                redirect_to: str, flow_id: uuid.UUID | None = None) -> Outgoing:
    """Store a fresh code for `email` and build the mail carrying it (code and link)."""
    code = "".join(secrets.choice("0123456789") for _ in range(ctx.settings.auth_otp_length))
    hashed = token_hash(email, code)
    await conn.execute(UPSERT_TOKEN, user_id, token_type, hashed, email, flow_id, ctx.settings.auth_otp_exp)
    if token_type in MARK_SENT:
        await conn.execute(MARK_SENT[token_type], user_id)
    link = f"{ctx.settings.api_url}/auth/v1/verify?" + urlencode(
        {"token": hashed, "type": LINK_TYPE[token_type], "redirect_to": redirect_to})
    minutes = max(1, ctx.settings.auth_otp_exp // 60)
    if token_type == "reauthentication":  # a code to type in the app, no link
        body = f"{SUBJECTS[token_type]}\n\nYour code: {code}\n\nIt works once and expires in {minutes} minutes.\n"
    else:
        body = (f"{SUBJECTS[token_type]}\n\nYour code: {code}\n\nOr follow this link: {link}\n\n"
                f"The code and the link work once and expire in {minutes} minutes.\n")
    values = {"Token": code, "ConfirmationURL": link, "Email": email, "SiteURL": redirects.site_url(ctx.settings),
              "TokenHash": hashed, "RedirectTo": redirect_to}
    subject, body, html = mail.render(ctx.settings, token_type, values, SUBJECTS[token_type], body)
    return Outgoing(email, subject, body, code, hashed, link, html)


@dataclass(frozen=True)
class OutgoingSms:
    """An SMS to send once the transaction that created its code has committed."""

    recipient: str
    body: str
    code: str


async def issue_sms(conn: asyncpg.Connection, ctx: Context, user_id: uuid.UUID, token_type: str,
                    phone: str) -> OutgoingSms:
    """Store a fresh code for `phone` (digits, no +) and build the SMS carrying it."""
    code = "".join(secrets.choice("0123456789") for _ in range(ctx.settings.auth_otp_length))
    await conn.execute(UPSERT_TOKEN, user_id, token_type, token_hash(phone, code), phone, None,
                       ctx.settings.auth_otp_exp)
    if token_type in MARK_SENT:
        await conn.execute(MARK_SENT[token_type], user_id)
    minutes = max(1, ctx.settings.auth_otp_exp // 60)
    return OutgoingSms(phone, f"Your code is {code}. It expires in {minutes} minutes.", code)


async def send(ctx: Context, outgoing: Outgoing | OutgoingSms | None) -> None:
    if isinstance(outgoing, OutgoingSms):
        await sms.send(ctx.settings, ctx.pool, outgoing.recipient, outgoing.body)
    elif outgoing is not None:
        await mail.send(ctx.settings, ctx.pool, outgoing.recipient, outgoing.subject, outgoing.body, outgoing.html)


@dataclass
class Verified:
    """A consumed token: the session it opened, or the PKCE flow it completed (redirect flows)."""

    session: dict[str, Any] | None
    flow_id: uuid.UUID | None
    user_id: uuid.UUID
    kind: str
    pending: bool = False  # the first of the two confirmations of a secure email change


async def consume(conn: asyncpg.Connection, ctx: Context, verify_type: str, hashed: str,
                  *, open_session: bool) -> Verified:
    if verify_type not in VERIFY_TYPES:
        raise errors.bad_request("Verify requires a verification type")
    token_types, method = VERIFY_TYPES[verify_type]
    row = await conn.fetchrow(TAKE_TOKEN, hashed, token_types)
    if row is None or not row["fresh"]:
        raise errors.AuthError(403, errors.OTP_EXPIRED, "Token has expired or is invalid")
    user_id = row["user_id"]
    if row["token_type"] in ("email_change", "email_change_current"):
        other = "email_change_current" if row["token_type"] == "email_change" else "email_change"
        if await conn.fetchval(OTHER_PENDING, user_id, other):
            return Verified(None, None, user_id, method, pending=True)
        new_email = await conn.fetchval(PENDING_EMAIL, user_id)
        if not new_email:
            raise errors.AuthError(403, errors.OTP_EXPIRED, "Token has expired or is invalid")
        row = {**dict(row), "relates_to": new_email}
        try:
            await conn.execute(APPLY_EMAIL_CHANGE, user_id, row["relates_to"])
        except asyncpg.UniqueViolationError:  # the address was taken since the change was asked for
            raise errors.AuthError(422, errors.EMAIL_EXISTS,
                                   "A user with this email address has already been registered") from None
        await conn.execute(UPDATE_EMAIL_IDENTITY, user_id, row["relates_to"])
        await audit.record(conn, "email_changed", user_id, ip=ctx.ip, new=row["relates_to"])
        user = await users.by_id(conn, user_id)
        if user is not None and not await conn.fetchval(HAS_EMAIL_IDENTITY, user_id):
            await conn.execute(users.INSERT_IDENTITY, str(user_id), user_id, "email", dump_json(
                {"sub": str(user_id), "email": row["relates_to"], "email_verified": True, "phone_verified": False}))
            await conn.execute(users.ADD_PROVIDER, user_id, "email")
    elif row["token_type"] == "phone_change":
        try:
            await conn.execute(APPLY_PHONE_CHANGE, user_id, row["relates_to"])
        except asyncpg.UniqueViolationError:
            raise errors.AuthError(422, "phone_exists", "Phone number already registered by another user") from None
        await conn.execute(UPSERT_PHONE_IDENTITY, user_id, row["relates_to"])
        await conn.execute(users.ADD_PROVIDER, user_id, "phone")
        await audit.record(conn, "phone_changed", user_id, ip=ctx.ip)
    elif row["token_type"] == "sms":
        await conn.execute(CONFIRM_PHONE, user_id)
        await conn.execute(UPSERT_PHONE_IDENTITY, user_id, row["relates_to"])
    else:
        await conn.execute(CONFIRM_EMAIL, user_id)
        await conn.execute(UPDATE_EMAIL_IDENTITY, user_id, row["relates_to"])
    user = await users.by_id(conn, user_id)
    if user is None:
        raise errors.AuthError(403, errors.OTP_EXPIRED, "Token has expired or is invalid")
    if row["flow_state_id"] is not None and not open_session:
        return Verified(None, row["flow_state_id"], user_id, method)
    session = await sessions.sign_in(conn, ctx.settings, ctx.signer, user, method, ctx.device)
    return Verified(session, None, user_id, method)


def hashed_from_body(body: dict[str, Any]) -> tuple[str, str | None]:
    """(token hash, identifier for rate limiting) from {email, token} or {token_hash}."""
    if body.get("token_hash"):
        value = body["token_hash"]
        if not isinstance(value, str):
            raise errors.bad_request("token_hash must be a string")
        return value, value
    email, code = body.get("email"), body.get("token")
    if not isinstance(code, str) or not code:
        raise errors.bad_request("Verify requires either a token or a token hash")
    if body.get("phone") and not email:
        phone = users.normalize_phone(body["phone"])
        return token_hash(phone, code.strip()), phone
    normalized = users.normalize_email(email)
    return token_hash(normalized, code.strip()), normalized


def fragment(session: dict[str, Any], kind: str) -> str:
    return urlencode({"access_token": session["access_token"], "expires_at": session["expires_at"],
                      "expires_in": session["expires_in"], "refresh_token": session["refresh_token"],
                      "token_type": "bearer", "type": kind})


async def redirect_after_verify(conn: asyncpg.Connection, verified: Verified, target: str, kind: str) -> str:
    """Where GET /verify sends the browser: `?code=` for PKCE, else the tokens in the fragment."""
    if verified.pending:
        return target + "#" + urlencode({"message": FIRST_OF_TWO})
    if verified.flow_id is not None:
        code = await pkce.issue_code(conn, verified.flow_id, verified.user_id)
        return target + ("&" if "?" in target else "?") + urlencode({"code": code})
    assert verified.session is not None
    return target + "#" + fragment(verified.session, kind)

