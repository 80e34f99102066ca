"""Per-device sessions (list, revoke a lost phone, the SQL helper for policies) and the admin API."""

from __future__ import annotations

import json
import uuid

import httpx
import psycopg
import pytest
from supabase_auth.errors import AuthApiError

from tests.auth.conftest import PASSWORD, make_client


def device_client(api, device_id, platform, version):
    headers = {"apikey": api.anon_key, "Authorization": f"Bearer {api.anon_key}", "X-Device-Id": device_id,
               "X-Device-Platform": platform, "X-App-Version": version}
    from supabase_auth import SyncGoTrueClient

    return SyncGoTrueClient(url=f"{api.url}/auth/v1", headers=headers, auto_refresh_token=False)


def session_is_active(database, token_claims):
    """What a policy calling auth.session_is_active() sees for this token, as the authenticated role."""
    with psycopg.connect(database) as conn:
        conn.execute("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)",
                     (json.dumps(token_claims),))
        return conn.execute("select auth.session_is_active(), auth.uid()").fetchone()


def test_user_lists_devices_and_revokes_a_lost_phone(api, database, auth_url):
    with device_client(api, "phone-1", "ios", "1.4.0") as phone, device_client(api, "tab-2", "android", "1.3.9") as tab:
        phone.sign_up({"email": "ada@example.com", "password": PASSWORD})
        tab_session = tab.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD}).session
        phone_session = phone.get_session()
        listed = httpx.get(f"{auth_url}/sessions", headers=api.headers(tab_session.access_token)).json()["sessions"]
        by_device = {s["device_id"]: s for s in listed}
        assert set(by_device) == {"phone-1", "tab-2"}
        assert by_device["phone-1"]["platform"] == "ios" and by_device["phone-1"]["app_version"] == "1.4.0"
        assert by_device["tab-2"]["current"] is True and by_device["phone-1"]["current"] is False
        assert by_device["tab-2"]["ip"] == "127.0.0.1" and "supabase" not in (by_device["tab-2"]["user_agent"] or "x")

        phone_claims = api.signer.verify(phone_session.access_token)
        assert session_is_active(database, phone_claims) == (True, uuid.UUID(phone_claims["sub"]))

        # The phone is lost: the tablet revokes it, and stays signed in itself.
        gone = httpx.delete(f"{auth_url}/sessions/{by_device['phone-1']['id']}",
                            headers=api.headers(tab_session.access_token))
        assert gone.status_code == 204
        with pytest.raises(AuthApiError) as refresh:
            phone.refresh_session(phone_session.refresh_token)
        assert refresh.value.code == "refresh_token_not_found"
        with pytest.raises(AuthApiError) as access:
            phone.get_user(phone_session.access_token)
        assert access.value.code == "session_not_found"
        assert session_is_active(database, phone_claims)[0] is False
        assert tab.get_user(tab_session.access_token).user.email == "ada@example.com"
        tab.refresh_session(tab_session.refresh_token)

        # Revoking someone else's session (or an unknown one) is refused.
        with make_client(api) as other:
            mallory = other.sign_up({"email": "mallory@example.com", "password": PASSWORD}).session
        theirs = httpx.delete(f"{auth_url}/sessions/{by_device['tab-2']['id']}",
                              headers=api.headers(mallory.access_token))
        assert theirs.status_code == 404 and theirs.json()["error_code"] == "session_not_found"
        assert tab.get_user(tab_session.access_token) is not None
        junk = httpx.delete(f"{auth_url}/sessions/not-a-uuid", headers=api.headers(tab_session.access_token))
        assert junk.status_code == 404


def test_refresh_updates_last_seen_and_app_version(api, auth_url, admin):
    with device_client(api, "phone-1", "ios", "1.4.0") as phone:
        session = phone.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
    with device_client(api, "phone-1", "ios", "1.5.0") as phone:
        phone.refresh_session(session.refresh_token)
    row = admin.execute("select app_version, refreshed_at is not null from auth.sessions").fetchone()
    assert row == ("1.5.0", True)


def test_get_user_marks_the_device_as_seen(client, admin):
    session = client.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
    admin.execute("update auth.sessions set last_seen_at = now() - interval '2 days'")
    client.get_user(session.access_token)
    assert admin.execute("select now() - last_seen_at < interval '1 minute' from auth.sessions").fetchone()[0]


def test_tokens_without_a_session_are_refused_by_the_helper(api, database):
    claims = api.signer.verify(api.user_token(uuid.uuid4()))
    assert session_is_active(database, claims)[0] is False
    assert session_is_active(database, {"role": "anon"})[0] is False


def test_admin_manages_users(admin_api, api, auth_url):
    created = admin_api.create_user({"email": "Bob@example.com", "password": PASSWORD, "email_confirm": True,
                                     "user_metadata": {"team": "blue"}, "app_metadata": {"plan": "pro"}}).user
    assert created.email == "bob@example.com" and created.email_confirmed_at is not None
    assert created.app_metadata["plan"] == "pro" and created.app_metadata["provider"] == "email"
    for i in range(3):
        admin_api.create_user({"email": f"user{i}@example.com", "password": PASSWORD, "email_confirm": True})
    everyone = admin_api.list_users()
    assert len(everyone) == 4
    page = admin_api.list_users(page=2, per_page=3)
    assert len(page) == 1
    assert admin_api.get_user_by_id(created.id).user.email == "bob@example.com"

    updated = admin_api.update_user_by_id(created.id, {"user_metadata": {"level": 2}, "role": "authenticated"}).user
    assert updated.user_metadata == {"team": "blue", "level": 2}

    with make_client(api) as bob:
        session = bob.sign_in_with_password({"email": "bob@example.com", "password": PASSWORD}).session
        assert api.signer.verify(session.access_token)["app_metadata"]["plan"] == "pro"
        sessions = httpx.get(f"{auth_url}/admin/users/{created.id}/sessions",
                             headers=api.headers(api.service_key)).json()["sessions"]
        assert len(sessions) == 1
        revoked = httpx.delete(f"{auth_url}/admin/users/{created.id}/sessions/{sessions[0]['id']}",
                               headers=api.headers(api.service_key))
        assert revoked.status_code == 204
        with pytest.raises(AuthApiError):
            bob.refresh_session(session.refresh_token)

        banned = admin_api.update_user_by_id(created.id, {"ban_duration": "24h"}).user
        assert banned.banned_until is not None
        with pytest.raises(AuthApiError) as refused:
            bob.sign_in_with_password({"email": "bob@example.com", "password": PASSWORD})
        assert refused.value.code == "user_banned"
        admin_api.update_user_by_id(created.id, {"ban_duration": "none"})
        assert bob.sign_in_with_password({"email": "bob@example.com", "password": PASSWORD}).session

    admin_api.delete_user(created.id)
    with pytest.raises(AuthApiError) as missing:
        admin_api.get_user_by_id(created.id)
    assert (missing.value.status, missing.value.code) == (404, "user_not_found")
    assert len(admin_api.list_users()) == 3


def test_admin_api_refuses_non_admins(api, auth_url, client):
    session = client.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
    for token in (api.anon_key, session.access_token):
        answer = httpx.get(f"{auth_url}/admin/users", headers=api.headers(token))
        assert answer.status_code == 403 and answer.json()["error_code"] == "not_admin"
    created = httpx.post(f"{auth_url}/admin/users", json={"email": "x@example.com", "password": PASSWORD},
                         headers=api.headers(session.access_token))
    assert created.status_code == 403
    deleted = httpx.request("DELETE", f"{auth_url}/admin/users/{session.user.id}", headers=api.headers(api.anon_key))
    assert deleted.status_code == 403
    assert client.get_user(session.access_token).user.id == session.user.id


def test_admin_refuses_bad_input(admin_api):
    with pytest.raises(AuthApiError) as role:
        admin_api.create_user({"email": "x@example.com", "password": PASSWORD, "role": "postgres"})
    assert role.value.status == 400
    user = admin_api.create_user({"email": "x@example.com", "password": PASSWORD}).user
    with pytest.raises(AuthApiError) as ban:
        admin_api.update_user_by_id(user.id, {"ban_duration": "forever"})
    assert ban.value.status == 400
    with pytest.raises(AuthApiError) as exists:
        admin_api.create_user({"email": "X@example.com", "password": PASSWORD})
    assert exists.value.code == "email_exists"


def test_imported_password_hashes(admin_api, client, admin):
    import bcrypt
    from argon2 import PasswordHasher

    legacy = bcrypt.hashpw(b"imported-password-1", bcrypt.gensalt(rounds=4)).decode()
    admin_api.create_user({"email": "old@example.com", "password_hash": legacy, "email_confirm": True})
    argon = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("other-password-2")
    admin_api.create_user({"email": "argon@example.com", "password_hash": argon, "email_confirm": True})
    with pytest.raises(AuthApiError):
        client.sign_in_with_password({"email": "old@example.com", "password": "imported-password-2"})
    assert client.sign_in_with_password({"email": "old@example.com", "password": "imported-password-1"}).session
    # The bcrypt hash was upgraded to argon2id at that sign-in.
    stored = admin.execute("select encrypted_password from auth.users where email = 'old@example.com'").fetchone()[0]
    assert stored.startswith("$argon2id$")
    assert client.sign_in_with_password({"email": "old@example.com", "password": "imported-password-1"}).session
    assert client.sign_in_with_password({"email": "argon@example.com", "password": "other-password-2"}).session
    for bad in ("plaintext", "$2b$10$short", "$argon2id$nonsense"):
        with pytest.raises(AuthApiError) as refused:
            admin_api.create_user({"email": "x@example.com", "password_hash": bad})
        assert refused.value.status == 400


@pytest.mark.auth_settings(auth_refresh_reuse_interval=0)
def test_audit_trail_of_a_lost_phone(api, auth_url, admin):
    import time

    with device_client(api, "phone-1", "ios", "1.0") as phone, device_client(api, "tab-2", "android", "1.0") as tab:
        lost = phone.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
        kept = tab.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD}).session
        stolen = phone.refresh_session(lost.refresh_token).session
        time.sleep(0.05)
        with pytest.raises(AuthApiError):
            phone.refresh_session(lost.refresh_token)  # the thief replays the old token: detected
        with pytest.raises(AuthApiError):
            phone.refresh_session(stolen.refresh_token)  # the whole chain is gone
        tab.update_user({"password": "a-brand-new-pass-7"})
        tab.sign_out({"scope": "local"})
    rows = admin.execute("select action, detail ->> 'method', detail ->> 'device_id', session_id "
                         "from auth.audit_log order by id").fetchall()
    actions = [r[0] for r in rows]
    assert actions == ["signup", "login", "login", "token_reuse_detected", "password_changed", "logout"]
    assert rows[1][1:3] == ("password", "phone-1") and rows[2][2] == "tab-2"
    phone_session = str(api.signer.verify(lost.access_token)["session_id"])
    assert str(rows[3][3]) == phone_session
    assert str(rows[5][3]) == str(api.signer.verify(kept.access_token)["session_id"])
