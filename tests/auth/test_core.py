"""The core path with the real supabase_auth client: sign-up, password sign-in, refresh rotation with reuse
detection, get/update user, logout scopes, anonymous sign-in, wire errors."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

from tests.auth.conftest import PASSWORD, auth_metric, make_client


def sign_up(client, address="ada@example.com", **options):
    return client.sign_up({"email": address, "password": PASSWORD, "options": options})


def test_sign_up_returns_a_session_with_the_documented_claims(client, api):
    answer = sign_up(client, "Ada@Example.com", data={"display_name": "Ada"})
    session, user = answer.session, answer.user
    assert session is not None and session.token_type == "bearer"
    assert user.email == "ada@example.com"
    assert user.user_metadata == {"display_name": "Ada"}
    assert user.app_metadata == {"provider": "email", "providers": ["email"]}
    assert [i.provider for i in user.identities] == ["email"]
    assert session.expires_at - time.time() == pytest.approx(api.settings.jwt_exp, abs=5)
    claims = api.signer.verify(session.access_token)
    assert claims["sub"] == user.id and claims["aud"] == "authenticated" and claims["role"] == "authenticated"
    assert claims["iss"] == api.settings.jwt_issuer and claims["email"] == "ada@example.com"
    assert claims["phone"] == "" and claims["user_metadata"] == {"display_name": "Ada"}
    assert claims["app_metadata"]["provider"] == "email"
    assert claims["aal"] == "aal1" and claims["amr"][0]["method"] == "password"
    assert claims["is_anonymous"] is False and claims["session_id"]
    assert claims["exp"] - claims["iat"] == api.settings.jwt_exp


def test_sign_in_get_and_update_user(client, api):
    sign_up(client)
    client.sign_out()
    signed_in = client.sign_in_with_password({"email": "ADA@example.com", "password": PASSWORD})
    assert signed_in.user.email == "ada@example.com" and signed_in.user.last_sign_in_at is not None
    assert client.get_user().user.id == signed_in.user.id

    updated = client.update_user({"data": {"theme": "dark", "lang": "fr"}})
    assert updated.user.user_metadata == {"theme": "dark", "lang": "fr"}
    updated = client.update_user({"data": {"lang": None, "tz": "Europe/Paris"}})
    assert updated.user.user_metadata == {"theme": "dark", "tz": "Europe/Paris"}

    client.update_user({"password": "a-new-password-42"})
    client.sign_out()
    with pytest.raises(AuthApiError) as refused:
        client.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD})
    assert refused.value.code == "invalid_credentials" and refused.value.status == 400
    assert client.sign_in_with_password({"email": "ada@example.com", "password": "a-new-password-42"}).session


def test_password_change_signs_out_the_other_devices(client, api):
    sign_up(client)
    with make_client(api) as phone:
        other = phone.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD}).session
        client.update_user({"password": "a-new-password-42"})
        with pytest.raises(AuthApiError) as gone:
            phone.refresh_session(other.refresh_token)
        assert gone.value.code == "refresh_token_not_found"
    assert client.get_user() is not None  # the device that changed it stays signed in


def test_sign_up_refusals(client, api):
    sign_up(client)
    with pytest.raises(AuthApiError) as taken:
        sign_up(client)
    assert (taken.value.status, taken.value.code) == (422, "user_already_exists")
    with pytest.raises(AuthWeakPasswordError) as weak:
        client.sign_up({"email": "bob@example.com", "password": "short"})
    assert weak.value.code == "weak_password" and weak.value.reasons == ["length"]
    with pytest.raises(AuthApiError) as bad_email:
        client.sign_up({"email": "not-an-email", "password": PASSWORD})
    assert bad_email.value.code == "email_address_invalid"
    with pytest.raises(AuthApiError) as unknown:
        client.sign_in_with_password({"email": "nobody@example.com", "password": PASSWORD})
    assert unknown.value.code == "invalid_credentials"


@pytest.mark.auth_settings(auth_password_required_characters="lower,upper,digits,symbols")
def test_password_rule_lists_every_reason(client):
    with pytest.raises(AuthWeakPasswordError) as weak:
        client.sign_up({"email": "bob@example.com", "password": "abc"})
    assert weak.value.reasons == ["length", "characters"]
    assert "upper-case" in weak.value.message and "symbol" in weak.value.message


@pytest.mark.auth_settings(auth_password_required_characters="upper")
def test_password_rule_accepts_a_matching_password(client):
    with pytest.raises(AuthWeakPasswordError):
        sign_up(client)
    assert client.sign_up({"email": "ada@example.com", "password": "Correct-horse-9"}).session


def test_refresh_rotates_and_a_quick_second_use_gets_the_current_token(client, api):
    first = sign_up(client).session
    second = client.refresh_session(first.refresh_token).session
    assert second.refresh_token != first.refresh_token
    assert api.signer.verify(second.access_token)["session_id"] == api.signer.verify(first.access_token)["session_id"]
    # Two refreshes racing (flaky network): within the reuse interval the old token yields the current one.
    again = client.refresh_session(first.refresh_token).session
    assert again.refresh_token == second.refresh_token
    third = client.refresh_session(second.refresh_token).session
    assert third.refresh_token not in (first.refresh_token, second.refresh_token)


@pytest.mark.auth_settings(auth_refresh_reuse_interval=0)
def test_reused_refresh_token_revokes_the_whole_session(client, api):
    detected = auth_metric(api, "refresh_reuse_detected")
    first = sign_up(client).session
    second = client.refresh_session(first.refresh_token).session
    time.sleep(0.05)
    with pytest.raises(AuthApiError) as reused:
        client.refresh_session(first.refresh_token)
    assert (reused.value.status, reused.value.code) == (400, "refresh_token_already_used")
    # The family is gone: the legitimate newest token and the session's access tokens stop too.
    with pytest.raises(AuthApiError) as family:
        client.refresh_session(second.refresh_token)
    assert family.value.code == "refresh_token_not_found"
    with pytest.raises(AuthApiError) as access:
        client.get_user(second.access_token)
    assert (access.value.status, access.value.code) == (403, "session_not_found")
    assert auth_metric(api, "refresh_reuse_detected") == detected + 1


def test_unknown_refresh_token(client):
    with pytest.raises(AuthApiError) as unknown:
        client.refresh_session("not-a-token-we-issued")
    assert unknown.value.code == "refresh_token_not_found"


def _three_devices(api):
    clients = [make_client(api) for _ in range(3)]
    sign_up(clients[0])
    sessions = [clients[0].get_session()] + [
        c.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD}).session for c in clients[1:]]
    return clients, sessions


def _alive(client, session) -> bool:
    try:
        client.get_user(session.access_token)
        return True
    except AuthApiError as error:
        assert error.code == "session_not_found"
        return False


@pytest.mark.parametrize(("scope", "expected"), [("local", [False, True, True]), ("others", [True, False, False]),
                                                  ("global", [False, False, False])])
def test_logout_scopes(api, scope, expected):
    clients, sessions = _three_devices(api)
    try:
        clients[0].sign_out({"scope": scope})
        assert [_alive(clients[1], s) for s in sessions] == expected
        for c, s, alive in zip(clients, sessions, expected, strict=True):
            if not alive:
                with pytest.raises(AuthApiError):
                    c.refresh_session(s.refresh_token)
        assert (clients[0].get_session() is None) == (scope != "others")
    finally:
        for c in clients:
            c.close()


def test_logout_answers_204(client, auth_url, api):
    session = sign_up(client).session
    answer = httpx.post(f"{auth_url}/logout", params={"scope": "local"},
                        headers={**api.headers(session.access_token)})
    assert answer.status_code == 204 and answer.content == b""
    bad = httpx.post(f"{auth_url}/logout", params={"scope": "everywhere"}, headers=api.headers(session.access_token))
    assert bad.status_code in (400, 403)


def test_anonymous_sign_in(client, api):
    answer = client.sign_in_anonymously({"options": {"data": {"nickname": "guest"}}})
    assert answer.user.is_anonymous is True and answer.user.email in ("", None)
    assert answer.user.user_metadata == {"nickname": "guest"}
    claims = api.signer.verify(answer.session.access_token)
    assert claims["is_anonymous"] is True and claims["role"] == "authenticated"
    assert claims["amr"][0]["method"] == "anonymous"
    # An anonymous user becomes permanent by adding an email and password.
    upgraded = client.update_user({"email": "anon@example.com", "password": PASSWORD})
    assert upgraded.user.email == "anon@example.com" and upgraded.user.is_anonymous is False
    client.sign_out()
    assert client.sign_in_with_password({"email": "anon@example.com", "password": PASSWORD}).user.id == answer.user.id


@pytest.mark.auth_settings(auth_anonymous_enabled=False)
def test_anonymous_sign_in_disabled(client):
    with pytest.raises(AuthApiError) as disabled:
        client.sign_in_anonymously()
    assert (disabled.value.status, disabled.value.code) == (422, "anonymous_provider_disabled")


@pytest.mark.auth_settings(auth_signup_enabled=False)
def test_signup_disabled(client):
    with pytest.raises(AuthApiError) as disabled:
        sign_up(client)
    assert (disabled.value.status, disabled.value.code) == (422, "signup_disabled")


def test_error_shapes_follow_the_api_version_header(auth_url, api):
    body = {"email": "nobody@example.com", "password": PASSWORD}
    new = httpx.post(f"{auth_url}/token?grant_type=password", json=body,
                     headers={**api.headers(), "X-Supabase-Api-Version": "2024-01-01"})
    assert new.status_code == 400 and new.json() == {"code": "invalid_credentials",
                                                     "message": "Invalid login credentials"}
    assert new.headers["x-sb-error-code"] == "invalid_credentials"
    legacy = httpx.post(f"{auth_url}/token?grant_type=password", json=body, headers=api.headers())
    assert legacy.json() == {"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"}
    garbage = httpx.post(f"{auth_url}/signup", content=b"{not json", headers=api.headers())
    assert garbage.status_code == 400 and garbage.json()["error_code"] == "bad_json"
    grant = httpx.post(f"{auth_url}/token?grant_type=magic", json={}, headers=api.headers())
    assert grant.status_code == 400
    no_token = httpx.get(f"{auth_url}/user", headers={"apikey": api.anon_key})
    assert no_token.status_code == 401 and no_token.json()["error_code"] == "no_authorization"
    anon_as_user = httpx.get(f"{auth_url}/user", headers=api.headers(api.anon_key))
    assert anon_as_user.status_code == 403 and anon_as_user.json()["error_code"] == "bad_jwt"


def test_settings_endpoint(auth_url):
    answer = httpx.get(f"{auth_url}/settings").json()
    assert answer["external"]["email"] is True and answer["external"]["anonymous_users"] is True
    assert answer["disable_signup"] is False and answer["mailer_autoconfirm"] is True


def test_tokens_issued_are_accepted_by_the_api_claims_cache(client, api):
    from tuskbase.caller import identify
    from tuskbase.tokens import ClaimsCache

    session = sign_up(client).session
    caller = identify(ClaimsCache(api.signer), api.anon_key, f"Bearer {session.access_token}")
    claims, encoded = caller.claims, caller.claims_json
    assert claims["sub"] == session.user.id and '"session_id"' in encoded
    assert jwt.get_unverified_header(session.access_token)["alg"] == "HS256"


def test_concurrent_refreshes_of_one_token_agree(client, auth_url, api):
    from concurrent.futures import ThreadPoolExecutor

    session = sign_up(client).session

    def refresh(_: int) -> httpx.Response:
        return httpx.post(f"{auth_url}/token?grant_type=refresh_token", headers=api.headers(),
                          json={"refresh_token": session.refresh_token})

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(refresh, range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.json()["refresh_token"] for a in answers}) == 1  # every racer got the chain's current token
    assert client.refresh_session(answers[0].json()["refresh_token"]).session


def test_sign_in_with_a_password_weaker_than_the_current_rule_says_so(client, admin_api, auth_url, api):
    from argon2 import PasswordHasher

    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("short1")  # set under an old rule
    admin_api.create_user({"email": "ada@example.com", "password_hash": old, "email_confirm": True})
    answer = httpx.post(f"{auth_url}/token?grant_type=password", headers=api.headers(),
                        json={"email": "ada@example.com", "password": "short1"})
    assert answer.status_code == 200 and answer.json()["access_token"]
    assert answer.json()["weak_password"]["reasons"] == ["length"]
    strong = sign_up(client, "bob@example.com").session
    assert strong is not None
    again = httpx.post(f"{auth_url}/token?grant_type=password", headers=api.headers(),
                       json={"email": "bob@example.com", "password": PASSWORD})
    assert again.json()["weak_password"] is None
