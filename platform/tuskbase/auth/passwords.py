"""Password hashing (argon2id) and the strength rule.

Parameters are OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): strong against offline guessing while
a sign-in costs tens of milliseconds on a small server. Hashes carry their parameters, so raising them
later keeps old hashes valid (and `needs_rehash` upgrades them at the next sign-in).
Hashing runs in a thread: it is CPU-bound and would otherwise stall every request on the event loop.
"""

from __future__ import annotations

import asyncio
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tuskbase.auth import errors
from tuskbase.config import Settings

MAX_LENGTH = 1024
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
CLASSES = {
    "lower": (string.ascii_lowercase, "a lower-case letter"),
    "upper": (string.ascii_uppercase, "an upper-case letter"),
    "digits": (string.digits, "a digit"),
    "symbols": (string.punctuation, "a symbol"),
}
_dummy_hash: str | None = None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, password)


async def verify_password(encoded: str | None, password: str) -> bool:
    """True when `password` matches; a missing hash still costs one verification (no user enumeration by time)."""
    global _dummy_hash
    if not encoded:
        if _dummy_hash is None:
            _dummy_hash = await hash_password("tuskbase-dummy-password")
        encoded, password = _dummy_hash, password + "\x00never"
    try:
        return await asyncio.to_thread(HASHER.verify, encoded, password)
    except (VerificationError, InvalidHashError):
        return False


def check_strength(settings: Settings, password: object) -> str:
    """The password if it passes the rule, else `weak_password` with Supabase's reasons."""
    if not isinstance(password, str) or not password:
        raise errors.bad_request("Password is required")
    if len(password) > MAX_LENGTH:
        raise errors.bad_request(f"Password cannot be longer than {MAX_LENGTH} characters")
    reasons: list[str] = []
    messages: list[str] = []
    if len(password) < settings.auth_password_min_length:
        reasons.append("length")
        messages.append(f"Password should be at least {settings.auth_password_min_length} characters.")
    required = [c.strip() for c in settings.auth_password_required_characters.split(",") if c.strip()]
    missing = [CLASSES[c][1] for c in required if not any(ch in CLASSES[c][0] for ch in password)]
    if missing:
        reasons.append("characters")
        messages.append("Password should contain " + ", ".join(missing) + ".")
    if reasons:
        raise errors.weak_password(reasons, " ".join(messages))
    return password
