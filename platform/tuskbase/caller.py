"""Who is calling, and which Postgres role a statement runs as: the one home of both (ARCHITECTURE.md,
"Identity and RLS").

`identify(cache, apikey, authorization)` turns a request's headers into a `Caller` once, or raises one
`CallerError` whose `kind` each surface maps to its own code (REST PGRST301/302/303, auth bad_jwt /
no_authorization, sync SYNC105). Every service then takes the `Caller`, never loose claims.

This is also the only module that switches roles (a test fails on a role switch anywhere else under
platform/):

- `transaction(pool, caller)`: one transaction as the caller, identity transaction-local (gone at COMMIT);
- `session(pool, caller)` and `set_session_identity` / `clear_session_identity`: the REST form, identity set for
  the connection's session, each statement its own implicit transaction (rest/pool.py hands the connections
  out and clears what the last user left);
- `service_step(conn, caller)`, `Stepping` and `service_transaction(pool)`: sync's temporary service-role step
  (its own bookkeeping tables), and back to the caller's role for the app's data;
- `auth_transaction(pool)`: the auth service's own role, `tuskbase_auth`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from tuskbase.tokens import REQUEST_ROLES, ClaimsCache, ClaimsError, TokenError

SERVICE_ROLE = "service_role"
AUTH_ROLE = "tuskbase_auth"

# The transaction-local identity of a request: both values vanish at COMMIT.
SET_IDENTITY = "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)"
# The session form (REST): the next hand-out of the connection replaces or clears it.
SET_SESSION_IDENTITY = ("select set_config('role', $1, false), set_config('request.jwt.claims', $2, false), "
                        "set_config('default_transaction_read_only', $3, false)")
CLEAR_SESSION_IDENTITY = "RESET ROLE; RESET request.jwt.claims; RESET default_transaction_read_only"
# Sync's first statement: the service role for its bookkeeping, the caller's claims for what it reads under
# RLS later, and the lock that serializes one client's pulls and pushes, in one round trip.
BEGIN_SERVICE_STEP = ("select set_config('role', 'service_role', true), set_config('request.jwt.claims', $1, true), "
                      "pg_advisory_xact_lock(hashtext($2))")
AS_ROLE = "select set_config('role', $1, true)"
AS_SERVICE = "select set_config('role', 'service_role', true)"
# BEGIN and the role switch in one round trip (a simple-query string may hold several statements).
BEGIN_AS_AUTH_ROLE = (
    "begin; select set_config('role', 'tuskbase_auth', true), set_config('request.jwt.claims', '', true)"
)

CallerErrorKind = Literal["missing", "invalid", "claims"]


class CallerError(TokenError):
    """The request names no caller (`missing`), a token that does not verify (`invalid`), or a well-signed
    token with a bad claim (`claims`). A `TokenError`, so code that refuses any token error refuses it."""

    def __init__(self, kind: CallerErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Caller:
    """A verified caller: the request role and the claims RLS sees (and their JSON, as set in the database)."""

    role: str
    claims: dict[str, Any]  # shared by every request of the token: never changed
    claims_json: str
    # Permission errors are 401 for the anonymous role (log in first), 403 for a known one (PostgREST's rule).
    authenticated: bool
    user_id: str | None  # the token's `sub`
    session_id: str | None

    @property
    def user_key(self) -> str:
        """The identity sync binds a client to: the user, else the role (anon and service keys)."""
        return self.user_id or self.role

    @property
    def expires_at(self) -> float:
        return float(self.claims["exp"])

    @classmethod
    def of(cls, claims: Mapping[str, Any], claims_json: str | None = None) -> Caller:
        """The caller of verified `claims`; a role outside the request roles is refused (this guards against
        code passing raw input: tokens are checked before they get here)."""
        role = claims.get("role")
        if role not in REQUEST_ROLES:
            raise PermissionError(f"role {role!r} may not run requests")
        sub, session_id = claims.get("sub"), claims.get("session_id")
        return cls(role, claims, claims_json if claims_json is not None else encode_claims(claims), role != "anon",
                   None if sub is None else str(sub), None if session_id is None else str(session_id))


def encode_claims(claims: Mapping[str, Any]) -> str:
    return json.dumps(claims, separators=(",", ":"), default=str)


# Callers of recently seen claims, by their JSON text (the claims cache hands out one string per token, so a
# polling client costs a dict lookup here too). Bounded; a Caller depends on nothing but its claims.
_KNOWN: dict[str, Caller] = {}
_KNOWN_MAX = 4096


def _caller(claims: dict[str, Any], claims_json: str) -> Caller:
    found = _KNOWN.get(claims_json)
    if found is None:
        found = Caller.of(claims, claims_json)
        if len(_KNOWN) >= _KNOWN_MAX:
            _KNOWN.clear()
        _KNOWN[claims_json] = found
    return found


def identify(cache: ClaimsCache, apikey: str | None, authorization: str | None) -> Caller:
    """The caller of a request: the bearer token if any, else the `apikey` (anon or service key)."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise CallerError("invalid", "Authorization header must be `Bearer <token>`")
        return from_token(cache, token.strip())
    if apikey:
        return from_token(cache, apikey.strip())
    raise CallerError("missing", "no apikey or Authorization header")


def identify_raw(cache: ClaimsCache, headers: Mapping[bytes, bytes]) -> Caller:
    """`identify` from raw ASGI headers (the fast paths that bypass the framework)."""
    apikey, authorization = headers.get(b"apikey"), headers.get(b"authorization")
    return identify(cache, apikey and apikey.decode("latin-1"), authorization and authorization.decode("latin-1"))


def from_token(cache: ClaimsCache, token: Any) -> Caller:
    """The caller of one token (a live channel's refreshed token)."""
    try:
        claims, claims_json = cache.verify(token)
    except ClaimsError as error:
        raise CallerError("claims", str(error)) from None
    except TokenError as error:
        raise CallerError("invalid", str(error)) from None
    return _caller(claims, claims_json)


# --- as the caller --------------------------------------------------------------------------------------------


@asynccontextmanager
async def transaction(pool: Any, caller: Caller, *, readonly: bool = False) -> AsyncIterator[asyncpg.Connection]:
    """One pooled connection, one transaction as the caller's role with its claims (both transaction-local)."""
    async with pool.acquire() as conn, conn.transaction(readonly=readonly):
        await conn.execute(SET_IDENTITY, caller.role, caller.claims_json)
        yield conn


@asynccontextmanager
async def session(pool: Any, caller: Caller, *, readonly: bool) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the REST pool (`rest.pool.FastPool`) whose session runs as the caller: each statement is
    its own transaction (read-only when `readonly`); open one with `conn.transaction()` to group several."""
    async with pool.acquire_as(caller.role, caller.claims_json, readonly=readonly) as conn:
        yield conn


async def set_session_identity(conn: asyncpg.Connection, role: str, claims_json: str, readonly: str) -> None:
    """The session form of the identity (`readonly` is 'on' or 'off'); one statement, all or nothing."""
    await conn.execute(SET_SESSION_IDENTITY, role, claims_json, readonly)


async def clear_session_identity(conn: asyncpg.Connection) -> None:
    """Back to the login role, with no claims and read-write: what a connection's last user left is gone."""
    await conn.execute(CLEAR_SESSION_IDENTITY)


# --- the service-role step ------------------------------------------------------------------------------------


async def service_step(conn: asyncpg.Connection, caller: Caller, lock: str) -> Stepping:
    """In an open transaction: the service role with the caller's claims set, and the advisory lock `lock`
    taken; the returned `Stepping` switches to the caller's role for data and back."""
    await conn.execute(BEGIN_SERVICE_STEP, caller.claims_json, lock)
    return Stepping(conn, caller.role)


async def become_service(conn: asyncpg.Connection) -> None:
    """In an open transaction: the service role until COMMIT (sync's own tables, the feed's state)."""
    await conn.execute(AS_SERVICE)


@asynccontextmanager
async def service_transaction(pool: Any, *, readonly: bool = False) -> AsyncIterator[asyncpg.Connection]:
    """One pooled connection, one transaction as the service role (no caller's claims)."""
    async with pool.acquire() as conn, conn.transaction(readonly=readonly):
        await become_service(conn)
        yield conn


class Stepping:
    """One transaction's connection, switching between the service role (bookkeeping) and the caller's (data)."""

    __slots__ = ("conn", "current", "role")

    def __init__(self, conn: asyncpg.Connection, role: str) -> None:
        self.conn = conn
        self.role = role
        self.current = SERVICE_ROLE

    async def as_caller(self) -> asyncpg.Connection:
        if self.current != self.role:
            await self.conn.execute(AS_ROLE, self.role)
            self.current = self.role
        return self.conn

    async def as_service(self) -> asyncpg.Connection:
        if self.current != SERVICE_ROLE:
            await self.conn.execute(AS_ROLE, SERVICE_ROLE)
            self.current = SERVICE_ROLE
        return self.conn


# --- the auth service's role ----------------------------------------------------------------------------------


@asynccontextmanager
async def auth_transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """One transaction as `tuskbase_auth`, the only role that sees the auth tables (no request role does)."""
    async with pool.acquire() as conn:
        await conn.execute(BEGIN_AS_AUTH_ROLE)
        try:
            yield conn
        except BaseException:
            # A cancelled request may leave an operation in flight; the pool's reset rolls back then.
            with contextlib.suppress(Exception):
                if not conn.is_closed():
                    await conn.execute("rollback")
            raise
        await conn.execute("commit")
