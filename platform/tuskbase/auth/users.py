"""Users and identities: reading, creating, and the user JSON the Supabase clients parse."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from tuskbase.auth import errors
from tuskbase.auth.store import dump_json, load_json

USER_COLUMNS = (
    "id, aud, role, email, phone, encrypted_password, email_confirmed_at, phone_confirmed_at, confirmed_at, "
    "invited_at, confirmation_sent_at, recovery_sent_at, email_change, email_change_sent_at, last_sign_in_at, "
    "phone_change, phone_change_sent_at, "
    "raw_app_meta_data::text as app_meta, raw_user_meta_data::text as user_meta, is_anonymous, banned_until, "
    "created_at, updated_at, deleted_at, "
    "(select coalesce(json_agg(json_build_object("
    "'identity_id', i.id, 'id', i.provider_id, 'user_id', i.user_id, 'identity_data', i.identity_data, "
    "'provider', i.provider, 'email', i.email, 'last_sign_in_at', i.last_sign_in_at, "
    "'created_at', i.created_at, 'updated_at', i.updated_at) order by i.created_at), '[]') "
    "from auth.identities i where i.user_id = auth.users.id)::text as identities_json, "
    "(select coalesce(json_agg(json_build_object("
    "'id', f.id, 'friendly_name', coalesce(f.friendly_name, ''), 'factor_type', f.factor_type, "
    "'status', f.status, 'created_at', f.created_at, 'updated_at', f.updated_at) order by f.created_at), '[]') "
    "from auth.mfa_factors f where f.user_id = auth.users.id)::text as factors_json"
)
SELECT_USER_BY_ID = "select " + USER_COLUMNS + " from auth.users where id = $1 and deleted_at is null"
SELECT_USER_BY_EMAIL = "select " + USER_COLUMNS + " from auth.users where email = $1 and deleted_at is null"
SELECT_USER_BY_PHONE = "select " + USER_COLUMNS + " from auth.users where phone = $1 and deleted_at is null"
INSERT_USER = """
insert into auth.users (id, email, phone, encrypted_password, email_confirmed_at, phone_confirmed_at,
                        raw_app_meta_data, raw_user_meta_data, is_anonymous, role, confirmation_sent_at)
values ($1, $2, $3, $4, case when $5 then now() end, case when $6 then now() end, $7::jsonb, $8::jsonb, $9,
        $10, $11)
"""
INSERT_IDENTITY = """
insert into auth.identities (provider_id, user_id, provider, identity_data, last_sign_in_at)
values ($1, $2, $3, $4::jsonb, now())
on conflict (provider, provider_id) do update set identity_data = excluded.identity_data,
  last_sign_in_at = now(), updated_at = now()
"""
ADD_PROVIDER = """
update auth.users set raw_app_meta_data = jsonb_set(raw_app_meta_data, '{providers}',
  (select coalesce(jsonb_agg(distinct p), '[]') from (
     select jsonb_array_elements_text(coalesce(raw_app_meta_data -> 'providers', '[]')) as p
     union select $2) ps)),
  updated_at = now()
where id = $1
"""
TOUCH_SIGN_IN = "update auth.users set last_sign_in_at = now() where id = $1"

# Deliberately loose (as Supabase): one @, no spaces, a dot in the domain. Delivery is the real check.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_PATTERN = re.compile(r"^\+?[1-9]\d{6,14}$")


def normalize_email(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 255 or not EMAIL_PATTERN.match(value.strip()):
        raise errors.AuthError(400, errors.EMAIL_ADDRESS_INVALID, "Unable to validate email address: invalid format")
    return value.strip().lower()


def normalize_phone(value: Any) -> str:
    digits = re.sub(r"[\s\-()]", "", value) if isinstance(value, str) else ""
    if not PHONE_PATTERN.match(digits):
        raise errors.bad_request("Invalid phone number format (E.164 required)")
    return digits.lstrip("+")


def metadata(value: Any, name: str = "data") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.bad_request(f"{name} must be a JSON object")
    return value


def parse_uuid(value: str, what: str = "user") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise errors.AuthError(404, errors.USER_NOT_FOUND if what == "user" else errors.SESSION_NOT_FOUND,
                               f"{what.capitalize()} not found") from None


async def by_id(conn: asyncpg.Connection, user_id: uuid.UUID | str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_USER_BY_ID, uuid.UUID(str(user_id)))


async def by_email(conn: asyncpg.Connection, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_USER_BY_EMAIL, email)


async def by_phone(conn: asyncpg.Connection, phone: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_USER_BY_PHONE, phone)


async def create(
    conn: asyncpg.Connection,
    *,
    email: str | None = None,
    phone: str | None = None,
    password_hash: str | None = None,
    email_confirmed: bool = False,
    phone_confirmed: bool = False,
    user_metadata: dict[str, Any] | None = None,
    app_metadata: dict[str, Any] | None = None,
    provider: str = "email",
    anonymous: bool = False,
    role: str = "authenticated",
    user_id: uuid.UUID | None = None,
    confirmation_sent: bool = False,
    identity: tuple[str, dict[str, Any]] | None = None,
) -> asyncpg.Record:
    """Insert a user and its first identity; email_exists / phone_exists when taken."""
    user_id = user_id or uuid.uuid4()
    providers = [] if anonymous else [provider]
    app_meta = {**(app_metadata or {}), "provider": "anonymous" if anonymous else provider, "providers": providers}
    try:
        await conn.execute(
            INSERT_USER, user_id, email, phone, password_hash, email_confirmed, phone_confirmed,
            dump_json(app_meta), dump_json(user_metadata or {}), anonymous, role,
            datetime.now().astimezone() if confirmation_sent else None,
        )
        if identity is not None:
            provider_id, data = identity
        elif not anonymous and provider == "email" and email:
            provider_id, data = str(user_id), {"sub": str(user_id), "email": email,
                                               "email_verified": email_confirmed, "phone_verified": False}
        elif not anonymous and provider == "phone" and phone:
            provider_id, data = str(user_id), {"sub": str(user_id), "phone": phone,
                                               "email_verified": False, "phone_verified": phone_confirmed}
        else:
            provider_id, data = "", {}
        if provider_id:
            await conn.execute(INSERT_IDENTITY, provider_id, user_id, provider, dump_json(data))
    except asyncpg.UniqueViolationError as error:
        if "phone" in (error.constraint_name or ""):
            raise errors.AuthError(422, "phone_exists", "Phone number already registered by another user") from None
        if "pkey" in (error.constraint_name or ""):
            raise errors.AuthError(422, errors.USER_ALREADY_EXISTS, "A user with this id already exists") from None
        raise errors.AuthError(422, errors.EMAIL_EXISTS, "User already registered") from None
    return await by_id(conn, user_id)  # type: ignore[return-value]


def time_json(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with microseconds and `Z`, as Supabase Auth writes it (the Swift client is strict)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


def to_json(row: asyncpg.Record) -> dict[str, Any]:
    """The user object of Supabase Auth (what `User` in the clients parses)."""
    identities = load_json(row["identities_json"]) or []
    factors = load_json(row["factors_json"]) or []
    for item in (*identities, *factors):
        for key in ("last_sign_in_at", "created_at", "updated_at"):
            if item.get(key):
                item[key] = time_json(datetime.fromisoformat(item[key]))
    body = {
        "id": str(row["id"]),
        "aud": row["aud"],
        "role": row["role"],
        "email": row["email"] or "",
        "email_confirmed_at": time_json(row["email_confirmed_at"]),
        "phone": row["phone"] or "",
        "phone_confirmed_at": time_json(row["phone_confirmed_at"]),
        "confirmation_sent_at": time_json(row["confirmation_sent_at"]),
        "confirmed_at": time_json(row["confirmed_at"] or row["email_confirmed_at"] or row["phone_confirmed_at"]),
        "recovery_sent_at": time_json(row["recovery_sent_at"]),
        "invited_at": time_json(row["invited_at"]),
        "last_sign_in_at": time_json(row["last_sign_in_at"]),
        "app_metadata": load_json(row["app_meta"]),
        "user_metadata": load_json(row["user_meta"]),
        "identities": identities,
        "factors": factors,
        "created_at": time_json(row["created_at"]),
        "updated_at": time_json(row["updated_at"]),
        "is_anonymous": row["is_anonymous"],
    }
    if row["email_change"]:
        body["new_email"] = row["email_change"]
        body["email_change_sent_at"] = time_json(row["email_change_sent_at"])
    if row["phone_change"]:
        body["new_phone"] = row["phone_change"]
        body["phone_change_sent_at"] = time_json(row["phone_change_sent_at"])
    if row["banned_until"] is not None:
        body["banned_until"] = time_json(row["banned_until"])
    return body


def is_banned(row: asyncpg.Record) -> bool:
    banned_until = row["banned_until"]
    return banned_until is not None and banned_until > datetime.now().astimezone()
