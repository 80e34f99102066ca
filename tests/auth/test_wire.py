"""Bad input is answered in Supabase Auth's error format with a 4xx, never a 500 (scenario table), and
browsers get CORS answers."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.auth.conftest import PASSWORD

OK_EMAIL = "ok@example.com"
SCENARIOS = [
    # name, method, path, json body (or raw bytes), as service role, expected status, expected error code
    ("signup email not a string", "POST", "/signup", {"email": 5, "password": PASSWORD}, False, 400, None),
    ("signup email with NUL", "POST", "/signup", {"email": "a\u0000b@example.com", "password": PASSWORD}, False,
     400, None),
    ("signup data not an object", "POST", "/signup", {"email": OK_EMAIL, "password": PASSWORD, "data": "x"}, False,
     400, "validation_failed"),
    ("signup data with NUL", "POST", "/signup", {"email": OK_EMAIL, "password": PASSWORD, "data": {"k": "\u0000"}},
     False, 400, "validation_failed"),
    ("signup body is a list", "POST", "/signup", [], False, 400, "bad_json"),
    ("signup body not JSON", "POST", "/signup", b"\xff\xfe", False, 400, "bad_json"),
    ("signup password not a string", "POST", "/signup", {"email": OK_EMAIL, "password": 12345678}, False, 400, None),
    ("signup with phone", "POST", "/signup", {"phone": "+33600000000", "password": PASSWORD}, False, 400,
     "phone_provider_disabled"),
    ("password grant email list", "POST", "/token?grant_type=password", {"email": ["x"], "password": "p"}, False,
     400, "validation_failed"),
    ("password grant no password", "POST", "/token?grant_type=password", {"email": OK_EMAIL}, False, 400, None),
    ("refresh token not a string", "POST", "/token?grant_type=refresh_token", {"refresh_token": 5}, False, 400,
     "refresh_token_not_found"),
    ("pkce without code", "POST", "/token?grant_type=pkce", {}, False, 400, "validation_failed"),
    ("pkce unknown code", "POST", "/token?grant_type=pkce", {"auth_code": "x", "code_verifier": "y"}, False, 404,
     "flow_state_not_found"),
    ("no grant type", "POST", "/token", {}, False, 400, None),
    ("verify token not a string", "POST", "/verify", {"type": "email", "email": OK_EMAIL, "token": 5}, False, 400,
     None),
    ("verify unknown type", "POST", "/verify", {"type": "nope", "token_hash": "abc"}, False, 400, None),
    ("verify unknown hash", "POST", "/verify", {"type": "email", "token_hash": "abc"}, False, 403, "otp_expired"),
    ("otp without email", "POST", "/otp", {}, False, 400, None),
    ("otp short challenge", "POST", "/otp", {"email": OK_EMAIL, "code_challenge": "short"}, False, 400, None),
    ("recover bad email", "POST", "/recover", {"email": "nope"}, False, 400, "email_address_invalid"),
    ("resend bad type", "POST", "/resend", {"email": OK_EMAIL, "type": "sms"}, False, 400, None),
    ("admin page not a number", "GET", "/admin/users?page=abc", None, True, 400, None),
    ("admin page too large", "GET", "/admin/users?page=99999999999", None, True, 400, None),
    ("admin user not a uuid", "GET", "/admin/users/not-a-uuid", None, True, 404, "user_not_found"),
    ("admin unknown user", "PUT", f"/admin/users/{uuid.uuid4()}", {}, True, 404, "user_not_found"),
    ("admin create bad id", "POST", "/admin/users", {"email": OK_EMAIL, "id": "nope"}, True, 400, None),
    ("admin generate bad type", "POST", "/admin/generate_link", {"type": "x", "email": OK_EMAIL}, True, 400, None),
    ("authorize unknown provider", "GET", "/authorize?provider=nope", None, False, 400, "validation_failed"),
    ("logout without token", "POST", "/logout", None, False, 401, "no_authorization"),
    ("sessions without token", "GET", "/sessions", None, False, 401, "no_authorization"),
    ("user update without token", "PUT", "/user", {"data": {}}, False, 401, "no_authorization"),
]


@pytest.mark.parametrize(("name", "method", "path", "body", "as_admin", "status", "code"), SCENARIOS,
                         ids=[s[0] for s in SCENARIOS])
def test_bad_input_is_a_4xx_in_the_wire_format(api, auth_url, name, method, path, body, as_admin, status, code):
    key = api.service_key if as_admin else api.anon_key
    headers = {"apikey": key, "X-Supabase-Api-Version": "2024-01-01"}
    if as_admin:
        headers["Authorization"] = f"Bearer {key}"
    raw = body if isinstance(body, bytes) else None
    answer = httpx.request(method, auth_url + path, headers=headers, content=raw,
                           json=None if raw is not None or body is None else body)
    assert answer.status_code == status, (name, answer.text)
    payload = answer.json()
    assert set(payload) >= {"code", "message"} and answer.headers["x-sb-error-code"] == payload["code"], name
    if code:
        assert payload["code"] == code, name


def test_user_update_with_bad_values(client, auth_url, api):
    session = client.sign_up({"email": OK_EMAIL, "password": PASSWORD}).session
    for body in ({"data": ["x"]}, {"email": "nope"}, {"password": "x"}, {"data": {"k": "\u0000"}}, {"phone": "+1"}):
        answer = httpx.put(f"{auth_url}/user", json=body, headers=api.headers(session.access_token))
        assert 400 <= answer.status_code < 500, (body, answer.text)


def test_mail_link_with_a_bad_token_lands_with_an_error(auth_url):
    answer = httpx.get(f"{auth_url}/verify", params={"token": "zzz", "type": "magiclink",
                                                     "redirect_to": "http://app.test/x"})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("http://app.test/x#error=access_denied&error_code=otp_expired")


def test_cors_preflight_and_headers(auth_url):
    preflight = httpx.options(f"{auth_url}/token", headers={"Origin": "http://web.test",
                                                             "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "apikey" in preflight.headers["access-control-allow-headers"]
    failed = httpx.post(f"{auth_url}/token?grant_type=password", json={}, headers={"Origin": "http://web.test"})
    assert failed.headers["access-control-allow-origin"] == "*"
    assert httpx.get(f"{auth_url}/settings").headers["access-control-allow-origin"] == "*"
