"""Flows that go through a mail, delivered over SMTP to a real local server (aiosmtpd) that the test reads:
email OTP, magic link, PKCE exchange, sign-up confirmation, password recovery, email change; and the dev
outbox when no SMTP server is configured."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from supabase_auth.errors import AuthApiError

from tests.auth.conftest import PASSWORD, make_client

ADA = "ada@example.com"


def follow(link: str, api) -> str:
    """Open a mail link like a browser would, up to the redirect back into the app."""
    # Links carry the public URL; the test server listens on a loopback port of its own.
    assert link.startswith(api.settings.api_url + "/auth/v1/verify?")
    answer = httpx.get(api.url + link.removeprefix(api.settings.api_url), follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def test_email_otp_signs_in_and_creates_the_user(client, smtp, api):
    mailbox, _port = smtp
    client.sign_in_with_otp({"email": ADA, "options": {"data": {"plan": "free"}}})
    message = mailbox.wait_for(ADA)
    assert message["Subject"] == "Confirm your signup" and message["From"] == api.settings.smtp_sender
    code = mailbox.code(ADA)
    assert len(code) == api.settings.auth_otp_length
    with pytest.raises(AuthApiError) as wrong:
        client.verify_otp({"email": ADA, "token": "000000" if code != "000000" else "111111", "type": "email"})
    assert (wrong.value.status, wrong.value.code) == (403, "otp_expired")
    answer = client.verify_otp({"email": ADA, "token": code, "type": "email"})
    assert answer.session is not None and answer.user.email == ADA
    assert answer.user.email_confirmed_at is not None and answer.user.user_metadata == {"plan": "free"}
    assert api.signer.verify(answer.session.access_token)["amr"][0]["method"] == "otp"
    with pytest.raises(AuthApiError) as reused:
        client.verify_otp({"email": ADA, "token": code, "type": "email"})
    assert reused.value.code == "otp_expired"

    # A known user gets a sign-in code; a newer code replaces the older one.
    client.sign_in_with_otp({"email": ADA})
    older = mailbox.code(ADA, 2)
    client.sign_in_with_otp({"email": ADA})
    newer = mailbox.code(ADA, 3)
    assert mailbox.wait_for(ADA, 3)["Subject"] == "Your sign-in code"
    if older != newer:
        with pytest.raises(AuthApiError):
            client.verify_otp({"email": ADA, "token": older, "type": "magiclink"})
    assert client.verify_otp({"email": ADA, "token": newer, "type": "magiclink"}).user.email == ADA


def test_otp_without_create_user_refuses_unknown_addresses(client, smtp):
    with pytest.raises(AuthApiError) as refused:
        client.sign_in_with_otp({"email": ADA, "options": {"should_create_user": False}})
    assert refused.value.code == "otp_disabled"


def test_magic_link_returns_tokens_in_the_fragment(client, smtp, api):
    mailbox, _port = smtp
    client.sign_in_with_otp({"email": ADA, "options": {"email_redirect_to": "http://app.test/welcome"}})
    location = follow(mailbox.link(ADA), api)
    assert location.startswith("http://app.test/welcome#")
    with make_client(api) as browser:
        browser.initialize_from_url(location)
        session = browser.get_session()
        assert session is not None and session.user.email == ADA
    # The link works once; a second click lands with an error instead of tokens.
    again = follow(mailbox.link(ADA), api)
    assert "error_code=otp_expired" in again and "access_token" not in again


def test_magic_link_refuses_foreign_redirects(client, smtp, api):
    mailbox, _port = smtp
    client.sign_in_with_otp({"email": ADA, "options": {"email_redirect_to": "https://evil.example/steal"}})
    location = follow(mailbox.link(ADA), api)
    assert location.startswith("http://app.test#") or location.startswith("http://app.test/#")
    assert "evil" not in location


def test_pkce_magic_link_exchange(api, smtp):
    mailbox, _port = smtp
    with make_client(api, flow_type="pkce") as app:
        app.sign_in_with_otp({"email": ADA, "options": {"email_redirect_to": "myapp://callback"}})
        location = follow(mailbox.link(ADA), api)
        assert location.startswith("myapp://callback?code=") and "access_token" not in location
        code = parse_qs(urlsplit(location).query)["code"][0]
        with make_client(api) as thief:  # without the verifier the code is worthless
            with pytest.raises(AuthApiError) as refused:
                thief.exchange_code_for_session({"auth_code": code, "code_verifier": "x" * 50})
            assert refused.value.code == "bad_code_verifier"
        session = app.exchange_code_for_session({"auth_code": code}).session
        assert session is not None and session.user.email == ADA
        assert api.signer.verify(session.access_token)["amr"][0]["method"] == "magiclink"
        with pytest.raises(AuthApiError) as reused:
            app.exchange_code_for_session({"auth_code": code, "code_verifier": "y" * 50})
        assert reused.value.code == "flow_state_not_found"


@pytest.mark.auth_settings(auth_email_autoconfirm=False)
def test_signup_confirmation_by_code_and_pkce_link(client, smtp, api):
    mailbox, _port = smtp
    answer = client.sign_up({"email": ADA, "password": PASSWORD})
    assert answer.session is None and answer.user.email_confirmed_at is None
    assert answer.user.confirmation_sent_at is not None
    with pytest.raises(AuthApiError) as unconfirmed:
        client.sign_in_with_password({"email": ADA, "password": PASSWORD})
    assert unconfirmed.value.code == "email_not_confirmed"
    confirmed = client.verify_otp({"email": ADA, "token": mailbox.code(ADA), "type": "signup"})
    assert confirmed.session is not None and confirmed.user.email_confirmed_at is not None
    assert client.sign_in_with_password({"email": ADA, "password": PASSWORD}).session

    with make_client(api, flow_type="pkce") as app:
        app.sign_up({"email": "bob@example.com", "password": PASSWORD,
                     "options": {"email_redirect_to": "myapp://callback"}})
        location = follow(mailbox.link("bob@example.com"), api)
        code = parse_qs(urlsplit(location).query)["code"][0]
        assert app.exchange_code_for_session({"auth_code": code}).user.email_confirmed_at is not None


def test_password_recovery(client, smtp, api):
    mailbox, _port = smtp
    client.sign_up({"email": ADA, "password": PASSWORD})
    client.sign_out()
    client.reset_password_for_email(ADA)
    client.reset_password_for_email("nobody@example.com")  # same answer, no mail
    assert mailbox.wait_for(ADA)["Subject"] == "Reset your password"
    recovered = client.verify_otp({"email": ADA, "token": mailbox.code(ADA), "type": "recovery"})
    assert recovered.session is not None
    client.update_user({"password": "brand-new-password-1"})
    client.sign_out()
    assert client.sign_in_with_password({"email": ADA, "password": "brand-new-password-1"}).session
    assert all(m["To"] != "nobody@example.com" for m in mailbox.messages)


@pytest.mark.auth_settings(auth_email_autoconfirm=False)
def test_email_change_needs_the_new_address(client, smtp, admin_api):
    mailbox, _port = smtp
    admin_api.create_user({"email": ADA, "password": PASSWORD, "email_confirm": True})
    client.sign_in_with_password({"email": ADA, "password": PASSWORD})
    pending = client.update_user({"email": "ada@new.example"}).user
    assert pending.email == ADA and pending.new_email == "ada@new.example"
    changed = client.verify_otp({"email": "ada@new.example", "token": mailbox.code("ada@new.example"),
                                 "type": "email_change"})
    assert changed.user.email == "ada@new.example"
    client.sign_out()
    assert client.sign_in_with_password({"email": "ada@new.example", "password": PASSWORD}).session


@pytest.mark.auth_settings(auth_rate_limit_per_identifier=3, auth_rate_limit_window=60)
def test_guessing_codes_stops_at_the_rate_limit(client, smtp):
    mailbox, _port = smtp
    client.sign_in_with_otp({"email": ADA})
    code = mailbox.code(ADA)
    wrong = "123456" if code != "123456" else "654321"
    for _ in range(3):
        with pytest.raises(AuthApiError):
            client.verify_otp({"email": ADA, "token": wrong, "type": "email"})
    with pytest.raises(AuthApiError) as limited:
        client.verify_otp({"email": ADA, "token": code, "type": "email"})
    assert limited.value.status == 429


def test_without_smtp_mails_go_to_the_outbox(client, admin, caplog):
    caplog.set_level("INFO", logger="tuskbase.auth.mail")
    client.sign_in_with_otp({"email": ADA})
    rows = admin.execute("select recipient, subject, body from auth.mail_outbox").fetchall()
    assert len(rows) == 1 and rows[0][0] == ADA and "Your code: " in rows[0][2]
    code = rows[0][2].split("Your code: ")[1].split()[0]
    assert client.verify_otp({"email": ADA, "token": code, "type": "email"}).session
    assert any(ADA in r.getMessage() and code in r.getMessage() for r in caplog.records)


def test_admin_generate_link(admin_api, client):
    admin_api.create_user({"email": ADA, "password": PASSWORD, "email_confirm": True})
    link = admin_api.generate_link({"type": "magiclink", "email": ADA})
    assert link.properties.verification_type == "magiclink" and link.user.email == ADA
    assert "/auth/v1/verify?" in link.properties.action_link
    assert client.verify_otp({"email": ADA, "token": link.properties.email_otp, "type": "magiclink"}).session


def test_invite(admin_api, client, smtp, api, auth_url):
    mailbox, _port = smtp
    invited = admin_api.invite_user_by_email("bob@example.com", {"data": {"team": "blue"}}).user
    assert invited.invited_at is not None and invited.email_confirmed_at is None
    assert mailbox.wait_for("bob@example.com")["Subject"] == "You have been invited"
    accepted = client.verify_otp({"email": "bob@example.com", "token": mailbox.code("bob@example.com"),
                                  "type": "invite"})
    assert accepted.user.id == invited.id and accepted.user.user_metadata == {"team": "blue"}
    client.update_user({"password": PASSWORD})
    client.sign_out()
    assert client.sign_in_with_password({"email": "bob@example.com", "password": PASSWORD}).session
    refused = httpx.post(f"{auth_url}/invite", json={"email": "eve@example.com"}, headers=api.headers())
    assert refused.status_code == 403 and refused.json()["error_code"] == "not_admin"


@pytest.mark.auth_settings(auth_secure_password_change=True)
def test_password_change_from_an_old_session_needs_reauthentication(client, smtp, admin):
    mailbox, _port = smtp
    client.sign_up({"email": ADA, "password": PASSWORD})
    client.update_user({"password": "changed-while-fresh-1"})  # a session younger than a day may
    admin.execute("update auth.sessions set created_at = now() - interval '2 days'")
    with pytest.raises(AuthApiError) as needed:
        client.update_user({"password": "a-stolen-phone-pw-2"})
    assert needed.value.code == "reauthentication_needed"
    with pytest.raises(AuthApiError) as wrong_current:
        client.update_user({"password": "a-stolen-phone-pw-2", "current_password": "guess-guess-1"})
    assert wrong_current.value.code == "invalid_credentials"
    client.update_user({"password": "second-change-ok-3", "current_password": "changed-while-fresh-1"})

    client.reauthenticate()
    assert mailbox.wait_for(ADA)["Subject"] == "Confirm it is you"
    code = mailbox.code(ADA)
    with pytest.raises(AuthApiError) as bad_nonce:
        client.update_user({"password": "third-change-ok-4", "nonce": "000000" if code != "000000" else "111111"})
    assert bad_nonce.value.code == "reauthentication_not_valid"
    client.update_user({"password": "third-change-ok-4", "nonce": code})
    with pytest.raises(AuthApiError):  # the code worked once
        client.update_user({"password": "fourth-change-no-5", "nonce": code})
    client.sign_out()
    assert client.sign_in_with_password({"email": ADA, "password": "third-change-ok-4"}).session



@pytest.mark.auth_settings(auth_email_autoconfirm=False)
def test_email_change_to_an_address_taken_meanwhile(client, smtp, admin_api):
    mailbox, _port = smtp
    admin_api.create_user({"email": ADA, "password": PASSWORD, "email_confirm": True})
    client.sign_in_with_password({"email": ADA, "password": PASSWORD})
    client.update_user({"email": "shared@example.com"})
    code = mailbox.code("shared@example.com")
    admin_api.create_user({"email": "shared@example.com", "password": PASSWORD, "email_confirm": True})
    with pytest.raises(AuthApiError) as taken:
        client.verify_otp({"email": "shared@example.com", "token": code, "type": "email_change"})
    assert (taken.value.status, taken.value.code) == (422, "email_exists")
    assert client.get_user().user.email == ADA


@pytest.mark.auth_settings(auth_email_autoconfirm=False)
def test_signup_does_not_tell_who_has_an_account(client, smtp, admin_api):
    mailbox, _port = smtp
    real = admin_api.create_user({"email": ADA, "password": PASSWORD, "email_confirm": True}).user
    answer = client.sign_up({"email": ADA, "password": "another-password-9"})
    assert answer.session is None and answer.user.email == ADA
    assert answer.user.id != real.id and answer.user.identities == []  # Supabase's look-alike answer
    client.sign_up({"email": "bob@example.com", "password": PASSWORD})
    first = mailbox.code("bob@example.com")
    again = client.sign_up({"email": "bob@example.com", "password": PASSWORD})  # lost the first mail
    assert again.user.identities and mailbox.code("bob@example.com", 2) != "" and first
    assert all(m["To"] != ADA for m in mailbox.messages)
    assert client.sign_in_with_password({"email": ADA, "password": PASSWORD}).user.id == real.id


@pytest.mark.auth_settings(auth_email_autoconfirm=False, auth_secure_email_change=True)
def test_secure_email_change_needs_both_addresses(client, smtp, admin_api):
    mailbox, _port = smtp
    admin_api.create_user({"email": ADA, "password": PASSWORD, "email_confirm": True})
    client.sign_in_with_password({"email": ADA, "password": PASSWORD})
    client.update_user({"email": "ada@new.example"})
    assert mailbox.wait_for(ADA)["Subject"] == "Confirm the change of your email address"
    first = client.verify_otp({"email": ADA, "token": mailbox.code(ADA), "type": "email_change"})
    assert first.session is None and client.get_user().user.email == ADA  # one of two: nothing changed yet
    second = client.verify_otp({"email": "ada@new.example", "token": mailbox.code("ada@new.example"),
                                "type": "email_change"})
    assert second.user.email == "ada@new.example"
