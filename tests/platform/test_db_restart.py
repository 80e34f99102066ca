"""Postgres stopping and starting under a running API: every answer is 200 or 503 with Retry-After, never a 500.

A cluster of its own (the session's is shared by every other test), the real API on a loopback port, real
HTTP. The phases make each database state happen for certain rather than by timing luck:

1. a smart shutdown while the test holds a session open: the server refuses new connections with 57P03
   ("the database system is shutting down") but keeps running; the API's connections are terminated, so its
   next requests must connect, and meet 57P03;
2. the held session closes, the server stops: connections are refused;
3. the server starts again: requests come back to 200 by themselves.

A client thread keeps calling REST, auth and sync through all of it; /ready must say not ready while down.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import TEST_JWT_SECRET, TODO_APP, Api, free_port, serve_api
from tuskbase import migrate, policies
from tuskbase.config import Settings
from tuskbase.embedded import EmbeddedPostgres

DATABASE = "restart"
NEW_API = {"X-Supabase-Api-Version": "2024-01-01"}
OK = {200, 201}
BROWSER = {"Origin": "http://app.test"}  # a web client reads Retry-After only if CORS exposes it


@pytest.fixture
def cluster() -> Iterator[EmbeddedPostgres]:
    folder = Path(tempfile.mkdtemp(prefix="tuskbase-restart-"))
    os.chmod(folder, 0o755)
    server = EmbeddedPostgres(folder, free_port(), extra_options={"fsync": "off", "synchronous_commit": "off"})
    server.start(log=lambda _line: None)
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f'create database "{DATABASE}"')
        migrate.migrate(server.dsn(DATABASE), TODO_APP)
        policies.apply(server.dsn(DATABASE), TODO_APP)
        yield server
    finally:
        server.stop()


@pytest.fixture
def restart_api(cluster: EmbeddedPostgres, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(database_url=cluster.dsn(DATABASE), data_dir=tmp_path / "data", app_dir=TODO_APP,
                        jwt_secret=TEST_JWT_SECRET, db_pool_min=1, db_pool_max=4, auth_email_autoconfirm=True)
    with serve_api(settings) as served:
        yield served


class Caller(threading.Thread):
    """Calls REST, auth and sync in turn until stopped; keeps every (surface, status, headers, body)."""

    def __init__(self, api: Api, token: str) -> None:
        super().__init__(daemon=True)
        self.api, self.token = api, token
        self.seen: list[tuple[str, int, httpx.Headers, bytes]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        headers = {"apikey": self.api.anon_key, "Authorization": f"Bearer {self.token}", **BROWSER}
        with httpx.Client(base_url=self.api.url, headers=headers, timeout=30) as client:
            while not self.stopping.is_set():
                self.seen.extend(one_round(client))
                time.sleep(0.01)

    def statuses(self, surface: str) -> list[int]:
        return [status for name, status, _, _ in self.seen if name == surface]


def one_round(client: httpx.Client) -> list[tuple[str, int, httpx.Headers, bytes]]:
    """A read, a write and a one-transaction batch on REST; the signed-in user on auth; a pull on sync."""
    calls = (
        ("rest", lambda: client.get("/rest/v1/lists", params={"select": "id,title"})),
        ("rest", lambda: client.post("/rest/v1/lists", json={"title": "written during a restart"})),
        ("rest", lambda: client.post("/rest/v1/batch", json={"transaction": True, "requests": [
            {"method": "GET", "path": "/lists", "query": "select=id&limit=1"}]})),
        ("auth", lambda: client.get("/auth/v1/user", headers=NEW_API)),
        ("sync", lambda: client.post("/sync/v1/pull", json={"client_id": "restart-device"})),
    )
    out = []
    for surface, call in calls:
        response = call()
        out.append((surface, response.status_code, response.headers, response.content))
    return out


def assert_unavailable_answer(surface: str, status: int, headers: httpx.Headers, body: bytes) -> None:
    """A 503 in the surface's own format, with Retry-After."""
    assert status == 503, (surface, status, body)
    assert int(headers["retry-after"]) >= 1, (surface, headers)
    payload = httpx.Response(status, content=body).json()
    if surface == "rest":
        assert set(payload) == {"code", "message", "details", "hint"} and payload["code"] == "PGRST001", payload
        assert "retry-after" in headers["access-control-expose-headers"].lower()
    elif surface == "auth":
        assert payload["code"] == "service_unavailable" and headers["x-sb-error-code"] == "service_unavailable"
    else:
        assert payload["code"] == "SYNC140", payload


def call_all(api: Api, token: str) -> list[tuple[str, int, httpx.Headers, bytes]]:
    headers = {"apikey": api.anon_key, "Authorization": f"Bearer {token}", **BROWSER}
    with httpx.Client(base_url=api.url, headers=headers, timeout=30) as client:
        return one_round(client)


def served(answers: list[tuple[str, int, httpx.Headers, bytes]]) -> bool:
    return all(status in OK for _, status, _, _ in answers)


def wait_until(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_restart_answers_200_or_503_with_retry_after(cluster, restart_api):
    api = restart_api
    signup = httpx.post(f"{api.url}/auth/v1/signup", headers={"apikey": api.anon_key},
                        json={"email": "restart@example.com", "password": "correct-horse-battery-9"})
    assert signup.status_code == 200, signup.text
    token = signup.json()["access_token"]
    assert served(call_all(api, token))

    caller = Caller(api, token)
    caller.start()
    held = psycopg.connect(cluster.dsn(DATABASE), autocommit=True)
    try:
        # 1. Shutting down: new connections get 57P03; the API's current ones are cut.
        cluster._run("pg_ctl", "-D", str(cluster.pgdata), "-m", "smart", "-W", "stop")
        wait_until(lambda: _refuses_new_connections(cluster))
        held.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                     "where datname = %s and pid <> pg_backend_pid() and backend_type = 'client backend'",
                     (DATABASE,))
        for answer in call_all(api, token):
            assert_unavailable_answer(*answer)
        ready = httpx.get(f"{api.url}/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    finally:
        held.close()
    # 2. Stopped: connections refused.
    wait_until(lambda: not cluster.is_running())
    for answer in call_all(api, token):
        assert_unavailable_answer(*answer)
    assert httpx.get(f"{api.url}/ready").status_code == 503
    # 3. Started again: back to 200 without restarting the API.
    cluster.start(log=lambda _line: None)
    wait_until(lambda: served(call_all(api, token)))
    assert httpx.get(f"{api.url}/ready").status_code == 200
    caller.stopping.set()
    caller.join(30)

    for surface in ("rest", "auth", "sync"):
        assert set(caller.statuses(surface)) <= OK | {503}, (surface, sorted(set(caller.statuses(surface))))
        assert 503 in caller.statuses(surface) and 200 in caller.statuses(surface)
    for surface, status, headers, body in caller.seen:
        if status == 503:
            assert_unavailable_answer(surface, status, headers, body)


def _refuses_new_connections(cluster: EmbeddedPostgres) -> bool:
    try:
        psycopg.connect(cluster.dsn(DATABASE), connect_timeout=2).close()
    except psycopg.OperationalError as error:
        return "shutting down" in str(error)
    return False
