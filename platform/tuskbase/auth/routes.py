"""HTTP surface of the auth service, at /auth/v1, compatible with the Supabase Auth clients.

Every route of the service is listed here, each one or two calls into the flow modules. Rate limits are
applied inside the credential flows (signup, password, otp, recover, verify), where the identifier is known.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from litestar import Request, Response, Router, delete, get, post, put
from litestar.datastructures import ResponseHeader
from litestar.exceptions import HTTPException
from litestar.response import Redirect

from tuskbase.auth import (
    admin,
    errors,
    housekeeping,
    landing,
    magiclink,
    mfa,
    oauth,
    otp,
    password,
    pkce,
    ratelimit,
    redirects,
    sessions,
    signup,
    store,
)
from tuskbase.auth import user as user_flow
from tuskbase.auth.context import Context, bearer, json_body, of, respond
from tuskbase.auth.context import admin as require_admin
from tuskbase.db import is_unavailable
from tuskbase.service import Service

log = logging.getLogger("tuskbase.auth")


def _settings_json(ctx: Context) -> dict[str, Any]:
    settings = ctx.settings
    external = {"email": True, "phone": settings.auth_phone_enabled,
                "anonymous_users": settings.auth_anonymous_enabled}
    external.update({name: True for name in oauth.providers(settings)})
    return {
        "external": external,
        "disable_signup": not settings.auth_signup_enabled,
        "mailer_autoconfirm": settings.auth_email_autoconfirm,
        "phone_autoconfirm": False,
        "sms_provider": "",
        "saml_enabled": False,
        "jwt_algorithm": ctx.signer.algorithm,
    }


@get("/settings")
async def settings_route(request: Request) -> Response[bytes]:
    return respond(_settings_json(of(request)))


@get("/health")
async def health_route(request: Request) -> Response[bytes]:
    return respond({"name": "tuskbase-auth", "description": "Tuskbase Auth, compatible with Supabase Auth clients"})


@get("/landing")
async def landing_route() -> Response[bytes]:
    return Response(landing.PAGE, media_type="text/html; charset=utf-8", headers=landing.HEADERS)


@get("/.well-known/jwks.json")
async def jwks_route(request: Request) -> Response[bytes]:
    return respond(of(request).signer.jwks(), headers={"cache-control": "public, max-age=600"})


@post("/signup")
async def signup_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    return respond(await signup.signup(ctx, await json_body(request), request.query_params.get("redirect_to")))


@post("/token")
async def token_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    body = await json_body(request)
    grant = request.query_params.get("grant_type")
    if grant == "password":
        return respond(await password.sign_in(ctx, body))
    if grant == "refresh_token":
        raw = body.get("refresh_token")
        if not isinstance(raw, str) or not raw:
            raise errors.AuthError(400, errors.REFRESH_TOKEN_NOT_FOUND, "Refresh Token Not Found")
        async with store.transaction(ctx.pool) as conn:
            await ratelimit.hit_in(conn, ctx.settings, "refresh", ctx.ip, None)
            outcome = await sessions.refresh(conn, ctx.settings, ctx.signer, raw, ctx.device)
        if outcome.error is not None:
            raise outcome.error  # after COMMIT: a detected reuse keeps its revocation
        return respond(outcome.session)
    if grant == "pkce":
        await ratelimit.hit(ctx.pool, ctx.settings, "pkce", ctx.ip, None)
        async with store.transaction(ctx.pool) as conn:
            return respond(await pkce.exchange(conn, ctx, body))
    if grant == "id_token":
        return respond(await oauth.sign_in_with_id_token(ctx, body))
    raise errors.bad_request("unsupported_grant_type")


@post("/logout", status_code=204)
async def logout_route(request: Request) -> None:
    ctx = of(request)
    await user_flow.logout(ctx, _bearer(request, ctx), request.query_params.get("scope"))


@get("/user")
async def get_user_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    return respond(await user_flow.get(ctx, _bearer(request, ctx)))


@put("/user")
async def update_user_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    claims = _bearer(request, ctx)
    body = await json_body(request)
    return respond(await user_flow.update(ctx, claims, body, request.query_params.get("redirect_to")))


@get("/reauthenticate")
async def reauthenticate_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    await user_flow.reauthenticate(ctx, _bearer(request, ctx))
    return respond({})


@get("/sessions")
async def list_sessions_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    return respond({"sessions": await user_flow.list_sessions(ctx, _bearer(request, ctx))})


@delete("/sessions/{session_id:str}", status_code=204)
async def revoke_session_route(request: Request) -> None:
    ctx = of(request)
    await user_flow.revoke_session(ctx, _bearer(request, ctx), request.path_params["session_id"])


@post("/otp")
async def otp_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    await magiclink.send(ctx, await json_body(request), request.query_params.get("redirect_to"))
    return respond({})


@post("/magiclink")
async def magiclink_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    await magiclink.send(ctx, await json_body(request), request.query_params.get("redirect_to"))
    return respond({})


@post("/recover")
async def recover_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    await magiclink.recover(ctx, await json_body(request), request.query_params.get("redirect_to"))
    return respond({})


@post("/resend")
async def resend_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    await magiclink.resend(ctx, await json_body(request), request.query_params.get("redirect_to"))
    return respond({})


@post("/verify")
async def verify_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    body = await json_body(request)
    hashed, identifier = otp.hashed_from_body(body)
    await ratelimit.hit(ctx.pool, ctx.settings, "verify", ctx.ip, identifier)
    async with store.transaction(ctx.pool) as conn:
        verified = await otp.consume(conn, ctx, str(body.get("type") or ""), hashed, open_session=True)
    if verified.pending:  # Supabase's answer to the first of two email-change confirmations
        return respond({"msg": otp.FIRST_OF_TWO, "code": "200"})
    return respond(verified.session)


@get("/verify")
async def verify_link_route(request: Request) -> Response[Any]:
    """The link in a mail: consume the token, then send the browser back to the app with tokens or a code."""
    ctx = of(request)
    params = request.query_params
    kind = params.get("type") or ""
    target = redirects.resolve(ctx.settings, params.get("redirect_to"))
    try:
        hashed = params.get("token") or ""
        await ratelimit.hit(ctx.pool, ctx.settings, "verify", ctx.ip, hashed)
        async with store.transaction(ctx.pool) as conn:
            verified = await otp.consume(conn, ctx, kind, hashed, open_session=False)
            location = await otp.redirect_after_verify(conn, verified, target, kind)
    except errors.AuthError as error:
        location = oauth.error_redirect(target, "access_denied" if error.status < 500 else "server_error",
                                        error.code, error.message, fragment=True)
    return Redirect(location, status_code=303)


@get("/authorize")
async def authorize_route(request: Request) -> Response[Any]:
    ctx = of(request)
    location = await oauth.authorize(ctx, dict(request.query_params))
    return Redirect(location, status_code=302)


@get("/user/identities/authorize")
async def link_identity_route(request: Request) -> Response[Any]:
    """Start linking a provider identity to the signed-in user (e.g. an anonymous user keeping their data)."""
    ctx = of(request)
    claims = _bearer(request, ctx)
    async with store.transaction(ctx.pool) as conn:
        user = await user_flow.current(conn, claims)
    location = await oauth.authorize(ctx, dict(request.query_params), link_user=user["id"])
    if request.query_params.get("skip_http_redirect") == "true":
        return respond({"url": location})
    return Redirect(location, status_code=302)


@delete("/user/identities/{identity_id:str}", status_code=204)
async def unlink_identity_route(request: Request) -> None:
    ctx = of(request)
    await user_flow.unlink_identity(ctx, _bearer(request, ctx), request.path_params["identity_id"])


@get("/callback")
async def callback_route(request: Request) -> Response[Any]:
    ctx = of(request)
    location = await oauth.callback(ctx, dict(request.query_params))
    return Redirect(location, status_code=302)


@post("/callback", status_code=303)
async def callback_form_route(request: Request) -> Response[Any]:
    """Providers answering with `response_mode=form_post` (Sign in with Apple when asking for name or email)."""
    ctx = of(request)
    form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
    location = await oauth.callback(ctx, {**dict(request.query_params), **form})
    return Redirect(location, status_code=303)


@post("/factors")
async def enroll_factor_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    claims = _bearer(request, ctx)
    return respond(await mfa.enroll(ctx, claims, await json_body(request)))


@post("/factors/{factor_id:str}/challenge")
async def challenge_factor_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    return respond(await mfa.challenge(ctx, _bearer(request, ctx), request.path_params["factor_id"]))


@post("/factors/{factor_id:str}/verify")
async def verify_factor_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    claims = _bearer(request, ctx)
    return respond(await mfa.verify(ctx, claims, request.path_params["factor_id"], await json_body(request)))


@delete("/factors/{factor_id:str}", status_code=200)
async def unenroll_factor_route(request: Request) -> Response[bytes]:
    ctx = of(request)
    return respond(await mfa.unenroll(ctx, _bearer(request, ctx), request.path_params["factor_id"]))


# --- admin (service role) -------------------------------------------------------------------------------


@post("/admin/users")
async def admin_create_user(request: Request) -> Response[bytes]:
    ctx = _admin(request)
    return respond(await admin.create(ctx, await json_body(request)))


@get("/admin/users")
async def admin_list_users(request: Request) -> Response[bytes]:
    ctx = _admin(request)
    page = _positive(request.query_params.get("page"), 1)
    per_page = min(_positive(request.query_params.get("per_page"), 50), 1000)
    body, total = await admin.list_users(ctx, page, per_page)
    last = max(1, -(-total // per_page))
    base = f"{ctx.settings.api_url}/auth/v1/admin/users?per_page={per_page}"
    links = [f'<{base}&page={page + 1}>; rel="next"'] if page < last else []
    links.append(f'<{base}&page={last}>; rel="last"')
    return respond(body, headers={"x-total-count": str(total), "link": ", ".join(links)})


@get("/admin/users/{user_id:str}")
async def admin_get_user(request: Request) -> Response[bytes]:
    return respond(await admin.get(_admin(request), request.path_params["user_id"]))


@put("/admin/users/{user_id:str}")
async def admin_update_user(request: Request) -> Response[bytes]:
    ctx = _admin(request)
    return respond(await admin.update(ctx, request.path_params["user_id"], await json_body(request)))


@delete("/admin/users/{user_id:str}", status_code=200)
async def admin_delete_user(request: Request) -> Response[bytes]:
    ctx = _admin(request)
    await admin.delete(ctx, request.path_params["user_id"], await json_body(request))
    return respond({})


@get("/admin/users/{user_id:str}/sessions")
async def admin_list_sessions(request: Request) -> Response[bytes]:
    return respond({"sessions": await admin.list_sessions(_admin(request), request.path_params["user_id"])})


@delete("/admin/users/{user_id:str}/sessions", status_code=204)
async def admin_revoke_all_sessions(request: Request) -> None:
    await admin.revoke_all_sessions(_admin(request), request.path_params["user_id"])


@delete("/admin/users/{user_id:str}/sessions/{session_id:str}", status_code=204)
async def admin_revoke_session(request: Request) -> None:
    await admin.revoke_session(_admin(request), request.path_params["user_id"], request.path_params["session_id"])


@get("/admin/users/{user_id:str}/factors")
async def admin_list_factors(request: Request) -> Response[bytes]:
    return respond(await admin.list_factors(_admin(request), request.path_params["user_id"]))


@delete("/admin/users/{user_id:str}/factors/{factor_id:str}", status_code=200)
async def admin_delete_factor(request: Request) -> Response[bytes]:
    return respond(await admin.delete_factor(_admin(request), request.path_params["user_id"],
                                             request.path_params["factor_id"]))


@post("/invite")
async def invite_route(request: Request) -> Response[bytes]:
    ctx = _admin(request)
    return respond(await magiclink.invite(ctx, await json_body(request), request.query_params.get("redirect_to")))


@post("/admin/generate_link")
async def admin_generate_link(request: Request) -> Response[bytes]:
    ctx = _admin(request)
    return respond(await magiclink.generate_link(ctx, await json_body(request),
                                                 request.query_params.get("redirect_to")))


# --- helpers --------------------------------------------------------------------------------------------


def _bearer(request: Request, ctx: Context) -> dict[str, Any]:
    return bearer(request, ctx)


def _admin(request: Request) -> Context:
    ctx = of(request)
    require_admin(request, ctx)
    return ctx


def _positive(raw: str | None, default: int) -> int:
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise errors.bad_request("page and per_page must be whole numbers") from None
    if not 1 <= value <= 1_000_000:
        raise errors.bad_request("page and per_page must be from 1 to 1000000")
    return value


def _auth_error(request: Request, error: errors.AuthError) -> Response[bytes]:
    return errors.to_response(request, error)


def _http_error(request: Request, error: HTTPException) -> Response[bytes]:
    code = errors.VALIDATION_FAILED if error.status_code < 500 else errors.UNEXPECTED_FAILURE
    return errors.to_response(request, errors.AuthError(error.status_code, code, str(error.detail)))


def _bad_value(request: Request, error: asyncpg.DataError) -> Response[bytes]:
    # Input Postgres cannot store (a NUL character, an out-of-range number): the client's fault, not ours.
    return errors.to_response(request, errors.AuthError(400, errors.VALIDATION_FAILED, f"Invalid value: {error}"))


def _conflict(request: Request, error: asyncpg.IntegrityConstraintViolationError) -> Response[bytes]:
    # A race the flows' own checks could not see (two requests claiming one email at once).
    return errors.to_response(request, errors.AuthError(422, "conflict", "The change conflicts with existing data"))


def _unexpected(request: Request, error: Exception) -> Response[bytes]:
    if is_unavailable(error):  # Postgres starting, stopping or unreachable: not a bug, and over soon
        retry_after = str(request.app.state.settings.unavailable_retry_after)
        return errors.to_response(request, errors.AuthError(
            503, errors.SERVICE_UNAVAILABLE, "The database is unavailable; retry shortly",
            headers={"retry-after": retry_after}))
    log.exception("auth request failed", exc_info=error)
    return errors.to_response(request, errors.AuthError(500, errors.UNEXPECTED_FAILURE, "Unexpected failure"))


ROUTER = Router(
    path="/auth/v1",
    route_handlers=[
        settings_route, health_route, jwks_route, signup_route, token_route, logout_route, get_user_route,
        update_user_route, list_sessions_route, revoke_session_route, otp_route, magiclink_route,
        recover_route, resend_route, verify_route, verify_link_route, authorize_route, callback_route,
        callback_form_route,
        admin_create_user, admin_list_users, admin_get_user, admin_update_user, admin_delete_user,
        admin_list_sessions, admin_revoke_all_sessions, admin_revoke_session, admin_generate_link, invite_route,
        enroll_factor_route, challenge_factor_route, verify_factor_route, unenroll_factor_route,
        admin_list_factors, admin_delete_factor, link_identity_route, unlink_identity_route,
        reauthenticate_route, landing_route,
    ],
    exception_handlers={errors.AuthError: _auth_error, HTTPException: _http_error, asyncpg.DataError: _bad_value,
                        asyncpg.IntegrityConstraintViolationError: _conflict,
                        Exception: _unexpected},
    response_headers=[ResponseHeader(name=errors.API_VERSION_HEADER, value=errors.API_VERSION)]
    + [ResponseHeader(name=name, value=value) for name, value in errors.CORS_HEADERS.items()],
)

SERVICE = Service("auth", routes=[ROUTER], startup=[housekeeping.start], shutdown=[housekeeping.stop])
