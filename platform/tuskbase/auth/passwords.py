"""Password hashing (argon2id) and the strength rule.

Parameters are OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): strong against offline guessing while
a sign-in costs tens of milliseconds on a small server. Hashes carry their parameters, so raising them
later keeps old hashes valid (and `needs_rehash` upgrades them at the next sign-in).
Hashing runs in a thread: it is CPU-bound and would otherwise stall every request on the event loop.
Imported hashes (admin API `password_hash`) may be argon2 or bcrypt, as Supabase accepts; a bcrypt hash is
replaced by an argon2id one at the user's next successful sign-in.
"""

from __future__ import annotations

import asyncio
import string

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

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
    if encoded.startswith(BCRYPT_PREFIXES):
        return await asyncio.to_thread(_bcrypt_matches, encoded, password)
    try:
        return await asyncio.to_thread(HASHER.verify, encoded, password)
    except (VerificationError, InvalidHashError):
        return False


BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def _bcrypt_matches(encoded: str, password: str) -> bool:
    try:
        # bcrypt reads 72 bytes at most; longer passwords are compared on their first 72 bytes, as when hashed.
        return bcrypt.checkpw(password.encode()[:72], encoded.encode())
    except ValueError:
        return False


def needs_rehash(encoded: str) -> bool:
    if encoded.startswith(BCRYPT_PREFIXES):
        return True
    try:
        return HASHER.check_needs_rehash(encoded)
    except InvalidHashError:
        return False


def check_imported_hash(encoded: object) -> str:
    """A `password_hash` given to the admin API: an argon2 or bcrypt hash, else 400."""
    if isinstance(encoded, str) and encoded.startswith(("$argon2id$", "$argon2i$", *BCRYPT_PREFIXES)):
        try:
            if encoded.startswith(BCRYPT_PREFIXES):
                bcrypt.checkpw(b"probe", encoded.encode())
            else:
                HASHER.verify(encoded, "\x00probe")
        except VerifyMismatchError:  # well-formed: it only did not match the probe
            return encoded
        except (ValueError, VerificationError, InvalidHashError):
            pass
        else:
            return encoded
    raise errors.bad_request("password_hash must be an argon2 or bcrypt hash")


def weakness(settings: Settings, password: str) -> tuple[list[str], str]:
    """Supabase's `weak_password` reasons (length, characters) the password has under the current rule."""
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
    return reasons, " ".join(messages)


def check_strength(settings: Settings, password: object) -> str:
    """The password if it passes the rule, else `weak_password` with Supabase's reasons."""
    if not isinstance(password, str) or not password:
        raise errors.bad_request("Password is required")
    if len(password) > MAX_LENGTH:
        raise errors.bad_request(f"Password cannot be longer than {MAX_LENGTH} characters")
    reasons, message = weakness(settings, password)
    if reasons:
        raise errors.weak_password(reasons, message)
    return password
