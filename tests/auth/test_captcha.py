"""Captcha on sign-up and sign-in, verified against a local stand-in of the hCaptcha siteverify endpoint."""

from __future__ import annotations

import pytest
from litestar import Litestar, Request, post
from supabase_auth.errors import AuthApiError

from tests.auth.conftest import PASSWORD, _free_port
from tests.auth.oidc_provider import Server


@pytest.fixture
def siteverify():
    seen: list[dict] = []

    @post("/siteverify", status_code=200)
    async def verify(request: Request) -> dict:
        form = dict(await request.form())
        seen.append(form)
        return {"success": form.get("secret") == "captcha-secret" and form.get("response") == "human"}

    port = _free_port()
    with Server(Litestar([verify], openapi_config=None, logging_config=None), port):
        yield f"http://127.0.0.1:{port}/siteverify", seen


@pytest.fixture
def settings(settings, siteverify):
    url, _seen = siteverify
    return settings.replace(auth_captcha_provider="hcaptcha", auth_captcha_secret="captcha-secret",
                            auth_captcha_verify_url=url)


def test_captcha_guards_signup_and_sign_in(client, siteverify):
    _url, seen = siteverify
    for options in ({}, {"captcha_token": "robot"}):
        with pytest.raises(AuthApiError) as refused:
            client.sign_up({"email": "ada@example.com", "password": PASSWORD, "options": options})
        assert (refused.value.status, refused.value.code) == (400, "captcha_failed")
    assert client.sign_up({"email": "ada@example.com", "password": PASSWORD,
                           "options": {"captcha_token": "human"}}).session
    assert seen[-1]["remoteip"] == "127.0.0.1"
    with pytest.raises(AuthApiError) as robot:
        client.sign_in_anonymously({"options": {"captcha_token": "robot"}})
    assert robot.value.code == "captcha_failed"
    with pytest.raises(AuthApiError):
        client.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD})
    assert client.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD,
                                         "options": {"captcha_token": "human"}}).session
    # Refreshing a session needs no captcha.
    assert client.refresh_session().session
