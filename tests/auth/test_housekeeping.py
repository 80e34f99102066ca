"""Session inactivity timeout and the periodic cleanup of the auth tables."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from supabase_auth.errors import AuthApiError

from tests.auth.conftest import PASSWORD
from tuskbase import db
from tuskbase.auth import housekeeping


@pytest.mark.auth_settings(auth_session_inactivity_timeout=3600)
def test_inactive_sessions_end(client, admin):
    session = client.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
    assert client.refresh_session(session.refresh_token).session  # active: fine
    admin.execute("update auth.sessions set last_seen_at = now() - interval '2 hours'")
    with pytest.raises(AuthApiError) as expired:
        client.refresh_session(client.get_session().refresh_token)
    assert expired.value.code == "session_expired"
    assert admin.execute("select revoked_reason from auth.sessions").fetchone()[0] == "inactivity"


@pytest.mark.auth_settings(auth_session_timebox=86400)
def test_sessions_end_at_their_timebox(client, admin):
    session = client.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
    assert client.refresh_session(session.refresh_token).session
    admin.execute("update auth.sessions set created_at = now() - interval '2 days'")
    with pytest.raises(AuthApiError) as expired:
        client.refresh_session(client.get_session().refresh_token)
    assert expired.value.code == "session_expired"
    assert admin.execute("select revoked_reason from auth.sessions").fetchone()[0] == "timebox"


def test_cleanup_removes_only_what_is_stale(client, admin, settings):
    client.sign_up({"email": "ada@example.com", "password": PASSWORD})
    client.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD})
    admin.execute("""
        insert into auth.rate_limits values ('ip:password', '10.0.0.1', now() - interval '2 days', 3),
                                            ('ip:password', '10.0.0.2', now(), 1);
        insert into auth.mail_outbox (recipient, subject, body, created_at)
          values ('old@example.com', 's', 'b', now() - interval '8 days'), ('new@example.com', 's', 'b', now());
        update auth.sessions set revoked_at = now() - interval '40 days'
          where id = (select id from auth.sessions order by created_at limit 1);
    """)

    async def run() -> None:
        pool = await db.create_pool(settings)
        try:
            await housekeeping.run_once(SimpleNamespace(state=SimpleNamespace(settings=settings, pool=pool)))
        finally:
            await pool.close()

    asyncio.run(run())
    kept = {key for (key,) in admin.execute("select key from auth.rate_limits")}
    assert "10.0.0.2" in kept and "10.0.0.1" not in kept and "ada@example.com" in kept
    assert admin.execute("select recipient from auth.mail_outbox").fetchall() == [("new@example.com",)]
    assert admin.execute("select count(*) from auth.sessions").fetchone()[0] == 1
    assert admin.execute("select count(*) from auth.refresh_tokens").fetchone()[0] == 1
