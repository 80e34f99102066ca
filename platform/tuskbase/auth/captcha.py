"""Captcha (hCaptcha or Cloudflare Turnstile) on the endpoints bots abuse: sign-up (anonymous too), password
sign-in, and the ones that send mail or SMS. The clients send the token as `gotrue_meta_security.captcha_token`."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from tuskbase.auth import errors
from tuskbase.auth.context import Context

log = logging.getLogger("tuskbase.auth.captcha")
VERIFY_URLS = {"hcaptcha": "https://api.hcaptcha.com/siteverify",
               "turnstile": "https://challenges.cloudflare.com/turnstile/v0/siteverify"}
TIMEOUT = 10.0


def _token(body: dict[str, Any]) -> str | None:
    security = body.get("gotrue_meta_security")
    token = security.get("captcha_token") if isinstance(security, dict) else None
    token = token or body.get("captcha_token")
    return token if isinstance(token, str) and token else None


async def check(ctx: Context, body: dict[str, Any]) -> None:
    provider = ctx.settings.auth_captcha_provider
    if not provider:
        return
    token = _token(body)
    if token is None:
        raise errors.AuthError(400, "captcha_failed", "captcha protection: request disallowed (no captcha token)")
    form = {"secret": ctx.settings.auth_captcha_secret, "response": token}
    if ctx.ip:
        form["remoteip"] = ctx.ip
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            answer = await client.post(ctx.settings.auth_captcha_verify_url or VERIFY_URLS[provider], data=form)
        verdict = answer.json()
    except (httpx.HTTPError, ValueError) as error:
        log.error("captcha verification failed: %s", error)
        raise errors.AuthError(500, errors.UNEXPECTED_FAILURE, "captcha verification process failed") from None
    if not (isinstance(verdict, dict) and verdict.get("success") is True):
        raise errors.AuthError(400, "captcha_failed", "captcha protection: request disallowed")
