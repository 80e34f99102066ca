"""Sync load limits (sync/limits.py): per-user and per-process admission, statement timeout, cancel on disconnect.

A pull is held in place deterministically by a lock the test takes: the advisory lock a pull of one client_id
takes first, or an ACCESS EXCLUSIVE lock on `todos`, which every first pull of it waits for.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from tests.conftest import Api, serve_api
from tests.sync.conftest import make_list, make_todo, new_user

ACTIVE_SYNC = ("select count(*) from pg_stat_activity where application_name = 'tuskbase-sync' "
               "and state = 'active' and datname = current_database()")


@pytest.fixture
def tight(settings) -> Iterator[Api]:
    """The API with one sync slot per user, two per process, a short queue and a short statement timeout."""
    with serve_api(settings.replace(sync_per_user_max=1, sync_pool_max=2, sync_queue_ms=300,
                                    sync_statement_timeout_ms=1500, sync_retry_after=3)) as served:
        yield served


def pull(api: Api, user: str, client_id: str, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{api.url}/sync/v1/pull", json={"client_id": client_id, "cursor": None},
                      headers=api.headers(api.user_token(user)), timeout=timeout)


def in_background(call, *args) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(call(*args)), daemon=True)
    thread.start()
    return thread, out


def hold_client_lock(admin: psycopg.Connection, client_id: str) -> None:
    """The advisory lock a pull of `client_id` takes before anything else (pull.BEGIN), held by the test."""
    admin.execute("select pg_advisory_lock(hashtext('tuskbase_sync_client:' || %s))", (client_id,))


def wait_for(admin: psycopg.Connection, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while admin.execute(ACTIVE_SYNC).fetchone()[0] != count:
        assert time.monotonic() < deadline, f"expected {count} active sync statements"
        time.sleep(0.02)


def test_a_user_over_the_per_user_limit_is_answered_429_with_retry_after(tight, admin):
    alice = new_user()
    hold_client_lock(admin, "alice-1")
    first, answers = in_background(pull, tight, alice, "alice-1")
    wait_for(admin, 1)
    refused = pull(tight, alice, "alice-2")
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "SYNC150"
    assert refused.headers["retry-after"] == "3"
    # Another user is not limited by alice's slot.
    bob = pull(tight, new_user(), "bob-1")
    assert bob.status_code == 200, bob.text
    admin.execute("select pg_advisory_unlock_all()")
    first.join(10)
    assert answers[0].status_code == 200
    # The slot is given back: alice may pull again.
    assert pull(tight, alice, "alice-2").status_code == 200


def test_anonymous_callers_do_not_share_one_users_slots(tight, admin):
    """The anon key names no user: one anonymous client holding a request must not turn the others away."""
    def anonymous_pull(client_id: str) -> httpx.Response:
        return httpx.post(f"{tight.url}/sync/v1/pull", json={"client_id": client_id, "cursor": None},
                          headers=tight.headers(tight.anon_key), timeout=30)

    hold_client_lock(admin, "anon-1")
    first, answers = in_background(anonymous_pull, "anon-1")
    wait_for(admin, 1)
    other = anonymous_pull("anon-2")
    assert other.status_code == 200, other.text
    admin.execute("select pg_advisory_unlock_all()")
    first.join(10)
    assert answers[0].status_code == 200


def test_no_free_process_slot_within_the_queue_time_is_503_with_retry_after(tight, admin):
    holders = []
    for client in ("u1-1", "u2-1"):
        hold_client_lock(admin, client)
        holders.append(in_background(pull, tight, new_user(), client))
    wait_for(admin, 2)
    started = time.monotonic()
    refused = pull(tight, new_user(), "u3-1")
    waited = time.monotonic() - started
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "SYNC151"
    assert refused.headers["retry-after"] == "3"
    assert waited >= 0.3  # it queued for TUSKBASE_SYNC_QUEUE_MS first
    # A request that queues gets the slot when one comes free within the queue time.
    queued, answer = in_background(pull, tight, new_user(), "u4-1")
    time.sleep(0.1)
    admin.execute("select pg_advisory_unlock_all()")
    queued.join(10)
    assert answer[0].status_code == 200, answer[0].text
    for thread, out in holders:
        thread.join(10)
        assert out[0].status_code == 200


def test_a_statement_past_the_timeout_is_503_sync152_in_both_protocols(tight, database):
    owner = new_user()
    with psycopg.connect(database, autocommit=True) as admin:
        make_todo(admin, make_list(admin, owner))
    with psycopg.connect(database) as locker:  # ACCESS EXCLUSIVE on todos: every first pull of it waits
        locker.execute("lock table public.todos in access exclusive mode")
        started = time.monotonic()
        own = pull(tight, owner, "phone-1")
        assert own.status_code == 503, own.text
        assert own.json()["code"] == "SYNC152"
        assert own.headers["retry-after"] == "3"
        assert 1.4 <= time.monotonic() - started < 10
        melon = httpx.get(f"{tight.url}/sync/v1/watermelon", params={"schema_version": "1"},
                          headers=tight.headers(tight.user_token(new_user())), timeout=30)
        assert melon.status_code == 503, melon.text
        assert melon.json()["code"] == "SYNC152"
        assert melon.headers["retry-after"] == "3"
        locker.rollback()
    # Nothing was left behind: the same pull answers once the lock is gone.
    assert pull(tight, owner, "phone-1").status_code == 200


def _abandon(api: Api, request: bytes) -> None:
    """Send one HTTP request over a raw socket and close it without reading the answer."""
    url = urlsplit(api.url)
    with socket.create_connection((url.hostname, url.port)) as conn:
        conn.sendall(request)
        time.sleep(0.3)


def _http(method: str, target: str, api: Api, token: str, body: bytes = b"") -> bytes:
    head = (f"{method} {target} HTTP/1.1\r\nhost: x\r\napikey: {api.anon_key}\r\nauthorization: Bearer {token}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n")
    return head.encode() + body


def test_a_client_that_goes_away_has_its_statement_cancelled(settings, database):
    with serve_api(settings.replace(sync_statement_timeout_ms=60000)) as api, \
            psycopg.connect(database, autocommit=True) as admin, psycopg.connect(database) as locker:
        locker.execute("lock table public.todos in access exclusive mode")
        token = api.user_token(new_user())
        body = json.dumps({"client_id": f"gone-{uuid.uuid4().hex[:6]}", "cursor": None}).encode()
        for request in (_http("POST", "/sync/v1/pull", api, token, body),
                        _http("GET", "/sync/v1/watermelon?schema_version=1", api, token)):
            thread = threading.Thread(target=_abandon, args=(api, request), daemon=True)
            thread.start()
            wait_for(admin, 1)  # the pull waits for the lock, in Postgres
            thread.join(5)
            wait_for(admin, 0, timeout=3)  # gone with its client, long before the statement timeout
        locker.rollback()
        # The connections went back to the pool in a usable state.
        answer = httpx.post(f"{api.url}/sync/v1/pull", json={"client_id": "after", "cursor": None},
                            headers=api.headers(token), timeout=30)
        assert answer.status_code == 200, answer.text
