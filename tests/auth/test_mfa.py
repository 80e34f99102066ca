"""TOTP multi-factor authentication with the real client: enroll, challenge, verify (aal2), refresh keeps aal2,
replayed and wrong codes refused, unenroll needs aal2, admin listing; other users cannot touch a factor."""

from __future__ import annotations

import time

import httpx
import pyotp
import pytest
from supabase_auth.errors import AuthApiError

from tests.auth.conftest import PASSWORD, make_client


def fresh_code(secret: str) -> str:
    return pyotp.TOTP(secret).now()


def test_totp_enrollment_and_step_up(client, api, admin_api, auth_url):
    session = client.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
    enrolled = client.mfa.enroll({"factor_type": "totp", "friendly_name": "phone app", "issuer": "Tuskbase"})
    assert enrolled.type == "totp" and enrolled.friendly_name == "phone app"
    assert enrolled.totp.qr_code.startswith("data:image/svg+xml;utf-8,<svg")
    assert enrolled.totp.uri.startswith("otpauth://totp/Tuskbase:ada%40example.com?secret=")
    secret = enrolled.totp.secret
    assert client.mfa.get_authenticator_assurance_level().current_level == "aal1"

    challenge = client.mfa.challenge({"factor_id": enrolled.id})
    assert challenge.expires_at > time.time()
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    with pytest.raises(AuthApiError) as refused:
        client.mfa.verify({"factor_id": enrolled.id, "challenge_id": challenge.id, "code": wrong})
    assert (refused.value.status, refused.value.code) == (422, "mfa_verification_failed")
    used = fresh_code(secret)
    verified = client.mfa.verify({"factor_id": enrolled.id, "challenge_id": challenge.id, "code": used})
    claims = api.signer.verify(verified.access_token)
    assert claims["aal"] == "aal2" and [a["method"] for a in claims["amr"]] == ["password", "totp"]
    assert claims["session_id"] == api.signer.verify(session.access_token)["session_id"]
    level = client.mfa.get_authenticator_assurance_level()
    assert (level.current_level, level.next_level) == ("aal2", "aal2")
    assert [f.status for f in client.mfa.list_factors().totp] == ["verified"]

    # The same code cannot be used twice (replay within its 30 s window).
    again = client.mfa.challenge({"factor_id": enrolled.id})
    with pytest.raises(AuthApiError) as replay:
        client.mfa.verify({"factor_id": enrolled.id, "challenge_id": again.id, "code": used})
    assert replay.value.code == "mfa_verification_failed"
    # A used challenge cannot be verified again (checked before the code).
    with pytest.raises(AuthApiError) as reused:
        client.mfa.verify({"factor_id": enrolled.id, "challenge_id": challenge.id, "code": wrong})
    assert reused.value.code == "mfa_challenge_expired"

    # Refreshing keeps aal2; the refresh token from before the step-up was retired.
    refreshed = client.refresh_session(verified.refresh_token).session
    assert api.signer.verify(refreshed.access_token)["aal"] == "aal2"
    # A new sign-in starts at aal1 and must step up again.
    with make_client(api) as laptop:
        fresh = laptop.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD}).session
        assert api.signer.verify(fresh.access_token)["aal"] == "aal1"
        level = laptop.mfa.get_authenticator_assurance_level()
        assert (level.current_level, level.next_level) == ("aal1", "aal2")
        with pytest.raises(AuthApiError) as low:
            laptop.mfa.unenroll({"factor_id": enrolled.id})
        assert low.value.code == "insufficient_aal"
        with pytest.raises(AuthApiError):
            laptop.mfa.enroll({"factor_type": "totp", "friendly_name": "second"})

    # Another user can neither challenge nor delete Ada's factor.
    with make_client(api) as other:
        mallory = other.sign_up({"email": "mallory@example.com", "password": PASSWORD}).session
        for method, path in (("POST", f"/factors/{enrolled.id}/challenge"), ("DELETE", f"/factors/{enrolled.id}")):
            answer = httpx.request(method, auth_url + path, headers=api.headers(mallory.access_token), json={})
            assert answer.status_code == 404, answer.text

    factors = httpx.get(f"{auth_url}/admin/users/{session.user.id}/factors", headers=api.headers(api.service_key))
    assert [f["friendly_name"] for f in factors.json()] == ["phone app"]
    assert client.mfa.unenroll({"factor_id": enrolled.id}).id == enrolled.id
    assert client.get_user().user.factors in ([], None)


def test_admin_deletes_a_factor_of_a_user_who_lost_the_phone(client, api, auth_url):
    session = client.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
    enrolled = client.mfa.enroll({"factor_type": "totp"})
    answer = httpx.delete(f"{auth_url}/admin/users/{session.user.id}/factors/{enrolled.id}",
                          headers=api.headers(api.service_key))
    assert answer.status_code == 200 and answer.json() == {"id": enrolled.id}
    refused = httpx.delete(f"{auth_url}/admin/users/{session.user.id}/factors/{enrolled.id}",
                           headers=api.headers(session.access_token))
    assert refused.status_code == 403


def test_only_totp(client):
    client.sign_up({"email": "ada@example.com", "password": PASSWORD})
    with pytest.raises(AuthApiError) as phone:
        client.mfa.enroll({"factor_type": "phone", "phone": "+33600000000"})
    assert phone.value.code == "mfa_phone_enroll_not_enabled"
