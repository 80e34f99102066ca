"""Sign-in with OAuth 2.0 / OpenID Connect providers configured by settings (any issuer with discovery).

GET /authorize sends the browser to the provider with our own `state`, `nonce` and PKCE verifier (kept in
auth.flow_state); GET /callback exchanges the provider's code, verifies the ID token against the provider's
JWKS (issuer, audience, expiry, nonce), finds or creates the user and its identity, then returns to the app:
with `?code=` when the app started a PKCE flow (exchanged at POST /token?grant_type=pkce), else with the
tokens in the URL fragment. POST /token?grant_type=id_token accepts an ID token obtained natively.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import jwt

from tuskbase.auth import audit, captcha, errors, otp, pkce, ratelimit, redirects, sessions, store, users
from tuskbase.auth.context import Context, string
from tuskbase.auth.store import dump_json
from tuskbase.config import Settings

HTTP_TIMEOUT = 10.0
CACHE_SECONDS = 3600
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
TAKE_OAUTH_FLOW = """
update auth.flow_state set oauth_state_hash = null where oauth_state_hash = $1
returning id, provider_type, code_challenge, redirect_to, oauth_nonce, oauth_verifier, user_id,
          authentication_method, extract(epoch from now() - created_at) as age
"""
IDENTITY_OWNER = "select user_id from auth.identities where provider = $1 and provider_id = $2"
BECOME_PERMANENT = """
update auth.users set is_anonymous = false,
  email = coalesce(email, $2), email_confirmed_at = case when email is null and $2 is not null then now()
                                                         else email_confirmed_at end,
  updated_at = now()
where id = $1
"""
DELETE_FLOW = "delete from auth.flow_state where id = $1"
IDENTITY_USER = "select user_id from auth.identities where provider = $1 and provider_id = $2"
CLAIM_UNCONFIRMED = """
update auth.users set email_confirmed_at = now(), encrypted_password = null, updated_at = now()
where id = $1 and email_confirmed_at is null
"""
IDENTITY_CLAIMS = ("iss", "sub", "email", "email_verified", "name", "full_name", "picture", "avatar_url",
                   "preferred_username", "given_name", "family_name", "locale")


@dataclass(frozen=True)
class Provider:
    name: str
    issuer: str  # OpenID Connect: endpoints from discovery; empty: plain OAuth 2.0 with the endpoints below
    client_id: str
    client_secret: str
    scopes: str
    authorization_endpoint: str = ""
    token_endpoint: str = ""
    userinfo_endpoint: str = ""
    emails_endpoint: str = ""  # GitHub-style list of {email, primary, verified}

    @property
    def oidc(self) -> bool:
        return bool(self.issuer)


@lru_cache(maxsize=8)
def _parse(raw: str) -> dict[str, Provider]:
    if not raw:
        return {}
    return {
        name: Provider(name, (conf.get("issuer") or "").rstrip("/"), conf["client_id"], conf["client_secret"],
                       conf.get("scopes") or ("openid email profile" if conf.get("issuer") else ""),
                       conf.get("authorization_endpoint", ""), conf.get("token_endpoint", ""),
                       conf.get("userinfo_endpoint", ""), conf.get("emails_endpoint", ""))
        for name, conf in json.loads(raw).items()
    }


async def endpoints(p: Provider) -> tuple[str, str]:
    """(authorization endpoint, token endpoint) from discovery (OIDC) or the provider's settings."""
    if p.oidc:
        document = await discovery(p)
        return document["authorization_endpoint"], document["token_endpoint"]
    return p.authorization_endpoint, p.token_endpoint


def providers(settings: Settings) -> dict[str, Provider]:
    return _parse(settings.auth_oidc_providers)


def provider(settings: Settings, name: Any) -> Provider:
    found = providers(settings).get(name) if isinstance(name, str) else None
    if found is None:
        raise errors.AuthError(400, errors.VALIDATION_FAILED,
                               f"Unsupported provider: Provider {name} could not be found")
    return found


_documents: dict[str, tuple[float, dict[str, Any]]] = {}


async def _fetch_json(url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            answer = await client.get(url)
        answer.raise_for_status()
        document = answer.json()
    except (httpx.HTTPError, ValueError) as error:
        raise errors.AuthError(502, errors.UNEXPECTED_FAILURE, f"OAuth provider unreachable: {error}") from None
    if not isinstance(document, dict):
        raise errors.AuthError(502, errors.UNEXPECTED_FAILURE, "OAuth provider answered with no JSON object")
    return document


async def _cached(url: str, refresh: bool = False) -> dict[str, Any]:
    hit = _documents.get(url)
    if hit is None or refresh or time.monotonic() - hit[0] > CACHE_SECONDS:
        hit = (time.monotonic(), await _fetch_json(url))
        _documents[url] = hit
    return hit[1]


async def discovery(p: Provider) -> dict[str, Any]:
    document = await _cached(p.issuer + "/.well-known/openid-configuration")
    if document.get("issuer", "").rstrip("/") != p.issuer:
        raise errors.AuthError(502, errors.UNEXPECTED_FAILURE, "OIDC discovery names another issuer")
    return document


async def verify_id_token(p: Provider, token: str, nonce: str | None) -> dict[str, Any]:
    document = await discovery(p)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise errors.AuthError(400, errors.BAD_OAUTH_CALLBACK, "ID token is malformed") from None
    alg = header.get("alg")
    if alg not in ID_TOKEN_ALGORITHMS:
        raise errors.AuthError(400, errors.BAD_OAUTH_CALLBACK, f"ID token algorithm {alg!r} is not accepted")
    key = None
    for refresh in (False, True):  # a kid not seen yet: the provider may have rotated its keys
        keys = (await _cached(document["jwks_uri"], refresh)).get("keys", [])
        match = [k for k in keys if k.get("kid") == header.get("kid")] or (keys if "kid" not in header else [])
        if match:
            key = jwt.PyJWK(match[0], algorithm=alg).key
            break
    if key is None:
        raise errors.AuthError(400, errors.BAD_OAUTH_CALLBACK, "ID token signed by an unknown key")
    try:
        claims = jwt.decode(token, key, algorithms=[alg], audience=p.client_id, issuer=document["issuer"],
                            leeway=30, options={"require": ["exp", "iat", "sub", "iss", "aud"]})
    except jwt.PyJWTError as error:
        raise errors.AuthError(400, errors.BAD_OAUTH_CALLBACK, f"ID token rejected: {error}") from None
    if nonce is not None:
        hashed = hashlib.sha256(nonce.encode()).hexdigest()
        if claims.get("nonce") not in (nonce, hashed):
            raise errors.AuthError(400, errors.BAD_OAUTH_CALLBACK, "ID token nonce does not match")
    return claims


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def callback_url(settings: Settings) -> str:
    return f"{settings.api_url}/auth/v1/callback"


async def authorize(ctx: Context, params: dict[str, Any], link_user: uuid.UUID | None = None) -> str:
    """Where to send the browser to sign in at the provider (or, with `link_user`, to link an identity)."""
    p = provider(ctx.settings, params.get("provider"))
    await ratelimit.hit(ctx.pool, ctx.settings, "authorize", ctx.ip, None)
    challenge = pkce.challenge_of(params)
    target = redirects.resolve(ctx.settings, params.get("redirect_to"))
    authorization_endpoint, _token_endpoint = await endpoints(p)
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(16), secrets.token_urlsafe(48)
    async with store.transaction(ctx.pool) as conn:
        await pkce.start(conn, challenge, p.name, "oauth" if link_user is None else "oauth_link",
                         user_id=link_user, redirect_to=target,
                         oauth_state_hash=hashlib.sha256(state.encode()).digest(), oauth_nonce=nonce,
                         oauth_verifier=verifier)
    scopes = " ".join(dict.fromkeys((p.scopes + " " + str(params.get("scopes") or "")).split()))
    query = {"client_id": p.client_id, "redirect_uri": callback_url(ctx.settings), "response_type": "code",
             "scope": scopes, "state": state, "code_challenge": _s256(verifier), "code_challenge_method": "S256"}
    if p.oidc:
        query["nonce"] = nonce
    endpoint = authorization_endpoint
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)


def error_redirect(target: str, error: str, code: str, description: str, *, fragment: bool = False) -> str:
    query = urlencode({"error": error, "error_code": code, "error_description": description})
    if fragment:
        return target + "#" + query
    return target + ("&" if "?" in target else "?") + query


async def callback(ctx: Context, params: dict[str, Any]) -> str:
    state = params.get("state") or ""
    async with store.transaction(ctx.pool) as conn:
        flow = await conn.fetchrow(TAKE_OAUTH_FLOW, hashlib.sha256(state.encode()).digest())
    site = redirects.site_url(ctx.settings)
    if flow is None:
        return error_redirect(site, "invalid_request", errors.BAD_OAUTH_STATE, "OAuth state is invalid or was used")
    target = flow["redirect_to"] or site
    pkce_flow = flow["code_challenge"] is not None
    try:
        if params.get("error"):
            raise errors.AuthError(400, errors.BAD_OAUTH_CALLBACK,
                                   str(params.get("error_description") or params["error"]))
        if flow["age"] > pkce.FLOW_LIFETIME:
            raise errors.AuthError(400, errors.FLOW_STATE_EXPIRED, "OAuth flow has expired")
        p = provider(ctx.settings, flow["provider_type"])
        claims = await _exchange(ctx, p, str(params.get("code") or ""), flow["oauth_verifier"], flow["oauth_nonce"])
        async with store.transaction(ctx.pool) as conn:
            if flow["authentication_method"] == "oauth_link":
                user = await link(conn, p, claims, flow["user_id"])
            else:
                user = await find_or_create(conn, ctx, p, claims)
            if pkce_flow:
                code = await pkce.issue_code(conn, flow["id"], user["id"])
                return target + ("&" if "?" in target else "?") + urlencode({"code": code})
            await conn.execute(DELETE_FLOW, flow["id"])
            session = await sessions.sign_in(conn, ctx.settings, ctx.signer, user, "oauth", ctx.device)
        return target + "#" + otp.fragment(session, "signup")
    except errors.AuthError as error:
        kind = "server_error" if error.status >= 500 else "access_denied"
        return error_redirect(target, kind, error.code, error.message, fragment=not pkce_flow)


async def _exchange(ctx: Context, p: Provider, code: str, verifier: str, nonce: str) -> dict[str, Any]:
    if not code:
        raise errors.AuthError(400, errors.BAD_OAUTH_CALLBACK, "OAuth callback without a code")
    _authorization_endpoint, token_endpoint = await endpoints(p)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": callback_url(ctx.settings),
            "client_id": p.client_id, "client_secret": p.client_secret, "code_verifier": verifier}
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            answer = await client.post(token_endpoint, data=form, headers={"accept": "application/json"})
        tokens = answer.json()
    except (httpx.HTTPError, ValueError) as error:
        raise errors.AuthError(502, errors.UNEXPECTED_FAILURE, f"OAuth token exchange failed: {error}") from None
    wanted = "id_token" if p.oidc else "access_token"
    if answer.status_code != 200 or not isinstance(tokens, dict) or not isinstance(tokens.get(wanted), str):
        detail = tokens.get("error_description") or tokens.get("error") if isinstance(tokens, dict) else None
        raise errors.AuthError(400, errors.BAD_OAUTH_CALLBACK,
                               f"OAuth token exchange refused: {detail or answer.status_code}")
    if p.oidc:
        return await verify_id_token(p, tokens["id_token"], nonce)
    return await user_info(p, tokens["access_token"])


async def user_info(p: Provider, access_token: str) -> dict[str, Any]:
    """Claims of a plain OAuth 2.0 sign-in, read from the provider's user endpoint (GitHub's shape or OIDC's)."""
    headers = {"authorization": f"Bearer {access_token}", "accept": "application/json"}
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, headers=headers) as client:
            info = (await client.get(p.userinfo_endpoint)).raise_for_status().json()
            emails = (await client.get(p.emails_endpoint)).raise_for_status().json() if p.emails_endpoint else []
    except (httpx.HTTPError, ValueError) as error:
        raise errors.AuthError(502, errors.UNEXPECTED_FAILURE, f"OAuth user endpoint failed: {error}") from None
    if not isinstance(info, dict) or not (info.get("sub") or info.get("id")):
        raise errors.AuthError(400, errors.BAD_OAUTH_CALLBACK, "OAuth user endpoint named no user")
    claims: dict[str, Any] = {"sub": str(info.get("sub") or info["id"]), "iss": p.authorization_endpoint}
    email, verified = info.get("email"), info.get("email_verified") is True
    for entry in emails if isinstance(emails, list) else []:
        if isinstance(entry, dict) and entry.get("primary") and entry.get("verified"):
            email, verified = entry.get("email"), True
    if isinstance(email, str) and email:
        claims.update(email=email, email_verified=verified)
    for claim, keys in (("name", ("name", "login")), ("picture", ("picture", "avatar_url")),
                        ("preferred_username", ("preferred_username", "login"))):
        value = next((info[k] for k in keys if isinstance(info.get(k), str) and info[k]), None)
        if value:
            claims[claim] = value
    return claims


def _identity_data(claims: dict[str, Any]) -> dict[str, Any]:
    subject = str(claims["sub"])
    data = {k: claims[k] for k in IDENTITY_CLAIMS if k in claims}
    data.update({"provider_id": subject, "sub": subject})
    if "picture" in data and "avatar_url" not in data:
        data["avatar_url"] = data["picture"]
    if "name" in data and "full_name" not in data:
        data["full_name"] = data["name"]
    return data


async def find_or_create(conn: asyncpg.Connection, ctx: Context, p: Provider, claims: dict[str, Any]) -> asyncpg.Record:
    """The user of an identity: known identity, else the account with the same verified email, else a new one."""
    subject = str(claims["sub"])
    email = claims.get("email").strip().lower() if isinstance(claims.get("email"), str) else None
    verified = claims.get("email_verified") in (True, "true")
    data = _identity_data(claims)
    user_id = await conn.fetchval(IDENTITY_USER, p.name, subject)
    if user_id is None and email and verified:
        existing = await users.by_email(conn, email)
        if existing is not None:
            # The provider vouches for the address: an unconfirmed account holding it (maybe pre-registered
            # by someone else) is confirmed and loses its password, so only the provider's user gets in.
            await conn.execute(CLAIM_UNCONFIRMED, existing["id"])
            user_id = existing["id"]
    if user_id is None:
        if not ctx.settings.auth_signup_enabled:
            raise errors.AuthError(422, errors.SIGNUP_DISABLED, "Signups not allowed for this instance")
        user = await users.create(conn, email=email, email_confirmed=bool(email and verified), provider=p.name,
                                  user_metadata=data, identity=(subject, data))
        return user
    await conn.execute(users.INSERT_IDENTITY, subject, user_id, p.name, dump_json(data))
    await conn.execute(users.ADD_PROVIDER, user_id, p.name)
    user = await users.by_id(conn, user_id)
    if user is None:
        raise errors.AuthError(404, errors.USER_NOT_FOUND, "User not found")
    return user


async def link(conn: asyncpg.Connection, p: Provider, claims: dict[str, Any], user_id: uuid.UUID | None
               ) -> asyncpg.Record:
    """Attach the provider identity to the signed-in user who started the flow (an anonymous user becomes
    permanent); an identity that already belongs to someone else is refused."""
    user = await users.by_id(conn, user_id) if user_id is not None else None
    if user is None:
        raise errors.AuthError(404, errors.USER_NOT_FOUND, "User not found")
    subject = str(claims["sub"])
    owner = await conn.fetchval(IDENTITY_OWNER, p.name, subject)
    if owner is not None and owner != user["id"]:
        raise errors.AuthError(422, "identity_already_exists", "Identity is already linked to another user")
    data = _identity_data(claims)
    await conn.execute(users.INSERT_IDENTITY, subject, user["id"], p.name, dump_json(data))
    await conn.execute(users.ADD_PROVIDER, user["id"], p.name)
    await audit.record(conn, "identity_linked", user["id"], provider=p.name)
    email = data.get("email") if claims.get("email_verified") in (True, "true") else None
    if user["is_anonymous"]:
        if email and await users.by_email(conn, email.lower()) is not None:
            raise errors.AuthError(422, errors.EMAIL_EXISTS, "A user with this email address already exists")
        await conn.execute(BECOME_PERMANENT, user["id"], email.lower() if email else None)
    return await users.by_id(conn, user["id"])


async def sign_in_with_id_token(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    """POST /token?grant_type=id_token: an ID token the app got from the provider's native SDK."""
    await captcha.check(ctx, body)
    name, token = body.get("provider"), string(body, "id_token")
    p = next((q for q in providers(ctx.settings).values() if q.oidc and q.issuer == str(name).rstrip("/")), None) \
        or provider(ctx.settings, name)
    if not p.oidc:
        raise errors.bad_request(f"Provider {p.name} is not OpenID Connect: it issues no ID tokens")
    if not token:
        raise errors.bad_request("id_token required")
    await ratelimit.hit(ctx.pool, ctx.settings, "id_token", ctx.ip, None)
    claims = await verify_id_token(p, token, string(body, "nonce"))
    async with store.transaction(ctx.pool) as conn:
        user = await find_or_create(conn, ctx, p, claims)
        return await sessions.sign_in(conn, ctx.settings, ctx.signer, user, "oauth", ctx.device)
