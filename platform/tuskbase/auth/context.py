"""What every auth handler needs from a request: the app's services, the JSON body, the caller."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response

from tuskbase.auth import errors
from tuskbase.auth.sessions import Device
from tuskbase.caller import CallerError, identify
from tuskbase.config import Settings
from tuskbase.tokens import ClaimsCache, Signer


@dataclass(frozen=True)
class Context:
    settings: Settings
    pool: asyncpg.Pool
    signer: Signer
    claims: ClaimsCache
    ip: str | None
    device: Device


def of(request: Request) -> Context:
    state = request.app.state
    settings: Settings = state.settings
    ip = None
    if settings.auth_client_ip_header:
        forwarded = request.headers.get(settings.auth_client_ip_header, "")
        # The last entry is the one the operator's proxy appended; earlier ones come from the client and lie.
        ip = forwarded.split(",")[-1].strip() or None
    if ip is None and request.client is not None:
        ip = request.client.host
    ip = _clean_ip(ip)
    return Context(settings, state.pool, state.signer, state.claims, ip, Device.from_headers(request.headers, ip))


def _clean_ip(ip: str | None) -> str | None:
    """A well-formed IP address or None: the value lands in an inet column and a rate-limit key."""
    try:
        return str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        return None


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise errors.AuthError(400, errors.BAD_JSON, "Could not parse request body as JSON") from None
    if not isinstance(value, dict):
        raise errors.AuthError(400, errors.BAD_JSON, "Request body must be a JSON object")
    return value


def string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise errors.bad_request(f"{name} must be a string")
    return value


def respond(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json",
                    headers=headers or {})


def bearer(request: Request, ctx: Context) -> dict[str, Any]:
    """The verified claims of the `Authorization: Bearer` token of a signed-in user."""
    try:
        claims = identify(ctx.claims, None, request.headers.get("authorization")).claims  # the bearer token only
    except CallerError as error:
        if error.kind == "missing":
            raise errors.AuthError(401, errors.NO_AUTHORIZATION, "This endpoint requires a Bearer token") from None
        raise errors.AuthError(403, errors.BAD_JWT, f"invalid JWT: unable to parse or verify signature, {error}") \
            from None
    if not claims.get("sub"):
        raise errors.AuthError(403, errors.BAD_JWT, "invalid claim: missing sub claim")
    try:
        uuid.UUID(str(claims["sub"]))
    except ValueError:
        raise errors.AuthError(403, errors.BAD_JWT, "invalid claim: sub claim must be a UUID") from None
    return claims


def admin(request: Request, ctx: Context) -> dict[str, Any]:
    """Claims of a service-role caller (the admin API); 403 `not_admin` for anyone else."""
    try:
        caller = identify(ctx.claims, request.headers.get("apikey"), request.headers.get("authorization"))
    except CallerError as error:
        raise errors.AuthError(401, errors.BAD_JWT, f"invalid JWT: {error}") from None
    if caller.role != "service_role":
        raise errors.AuthError(403, errors.NOT_ADMIN, "User not allowed")
    return caller.claims
