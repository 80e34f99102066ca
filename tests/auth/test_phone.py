"""Phone sign-in with SMS codes, with the real client: sign-up with phone + password, verify, password sign-in,
passwordless OTP, phone change; SMS through a webhook (a local HTTP server) or the dev outbox."""

from __future__ import annotations

import re
import threading

import pytest
from litestar import Litestar, Request, post
from supabase_auth.errors import AuthApiError

from tests.auth.conftest import PASSWORD, _free_port
from tests.auth.oidc_provider import Server

PHONE = "+33612345678"


def last_code(admin, phone: str = PHONE) -> str:
    row = admin.execute("select body from auth.sms_outbox where recipient = %s order by id desc limit 1",
                        (phone.lstrip("+"),)).fetchone()
    assert row, f"no SMS to {phone}"
    return re.search(r"Your code is (\d+)", row[0]).group(1)


@pytest.mark.auth_settings(auth_phone_enabled=True)
def test_phone_signup_verify_and_password_sign_in(client, admin, api):
    answer = client.sign_up({"phone": PHONE, "password": PASSWORD})
    assert answer.session is None and answer.user.phone == PHONE.lstrip("+")
    assert answer.user.app_metadata["provider"] == "phone"
    with pytest.raises(AuthApiError) as unconfirmed:
        client.sign_in_with_password({"phone": PHONE, "password": PASSWORD})
    assert unconfirmed.value.code == "phone_not_confirmed"
    verified = client.verify_otp({"phone": PHONE, "token": last_code(admin), "type": "sms"})
    assert verified.session is not None and verified.user.phone_confirmed_at is not None
    claims = api.signer.verify(verified.session.access_token)
    assert claims["phone"] == PHONE.lstrip("+") and claims["email"] == ""
    client.sign_out()
    assert client.sign_in_with_password({"phone": PHONE, "password": PASSWORD}).user.id == verified.user.id
    with pytest.raises(AuthApiError) as wrong:
        client.sign_in_with_password({"phone": PHONE, "password": "wrong-password-1"})
    assert wrong.value.code == "invalid_credentials"
    with pytest.raises(AuthApiError) as taken:
        client.sign_up({"phone": "+33 6-12-34-56-78", "password": PASSWORD})  # the same number, written otherwise
    assert taken.value.code == "user_already_exists"


@pytest.mark.auth_settings(auth_phone_enabled=True)
def test_phone_otp_and_phone_change(client, admin):
    client.sign_in_with_otp({"phone": PHONE})
    code = last_code(admin)
    with pytest.raises(AuthApiError):
        client.verify_otp({"phone": PHONE, "token": "000000" if code != "000000" else "111111", "type": "sms"})
    session = client.verify_otp({"phone": PHONE, "token": code, "type": "sms"}).session
    assert session is not None
    pending = client.update_user({"phone": "+4915112345678"}).user
    assert pending.phone == PHONE.lstrip("+") and pending.new_phone == "4915112345678"
    changed = client.verify_otp({"phone": "+4915112345678", "token": last_code(admin, "+4915112345678"),
                                 "type": "phone_change"})
    assert changed.user.phone == "4915112345678"


def test_phone_is_off_by_default(client):
    with pytest.raises(AuthApiError) as off:
        client.sign_up({"phone": PHONE, "password": PASSWORD})
    assert off.value.code == "phone_provider_disabled"
    with pytest.raises(AuthApiError):
        client.sign_in_with_otp({"phone": PHONE})


@pytest.fixture
def sms_gateway():
    received: list[dict] = []
    arrived = threading.Event()

    @post("/sms", status_code=202)
    async def deliver(request: Request) -> dict:
        received.append(await request.json())
        arrived.set()
        return {}

    port = _free_port()
    with Server(Litestar([deliver], openapi_config=None, logging_config=None), port):
        yield f"http://127.0.0.1:{port}/sms", received, arrived


@pytest.fixture
def settings(settings, request):
    if "sms_gateway" in request.fixturenames:
        url, _received, _arrived = request.getfixturevalue("sms_gateway")
        return settings.replace(auth_phone_enabled=True, auth_sms_webhook_url=url)
    return settings


def test_sms_go_through_the_webhook(sms_gateway, client, admin):
    _url, received, arrived = sms_gateway
    client.sign_in_with_otp({"phone": PHONE})
    assert arrived.wait(10)
    assert received[0]["phone"] == PHONE and "Your code is" in received[0]["message"]
    assert admin.execute("select count(*) from auth.sms_outbox").fetchone()[0] == 0
    code = re.search(r"Your code is (\d+)", received[0]["message"]).group(1)
    assert client.verify_otp({"phone": PHONE, "token": code, "type": "sms"}).session


@pytest.mark.auth_settings(auth_phone_enabled=True)
def test_admin_creates_and_updates_phone_users(admin_api, client):
    user = admin_api.create_user({"phone": PHONE, "password": PASSWORD, "phone_confirm": True}).user
    assert user.phone == PHONE.lstrip("+") and user.phone_confirmed_at is not None
    assert client.sign_in_with_password({"phone": PHONE, "password": PASSWORD}).user.id == user.id
    moved = admin_api.update_user_by_id(user.id, {"phone": "+4915112345678", "phone_confirm": True}).user
    assert moved.phone == "4915112345678"
    other = admin_api.create_user({"phone": "+14155550100", "password": PASSWORD}).user
    with pytest.raises(AuthApiError) as taken:
        admin_api.update_user_by_id(other.id, {"phone": "+4915112345678"})
    assert taken.value.code == "phone_exists"
