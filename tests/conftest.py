"""Test machinery shared by every layer.

- one embedded Postgres per test session (`wal_level=logical`), on a free loopback port;
- a template database migrated once (platform + the example todo app + policies);
- each test that asks for `database` gets its own database cloned from the template;
- `api` runs the real Litestar app under uvicorn on a loopback port, against the test's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tuskbase import migrate, policies
from tuskbase.config import Settings
from tuskbase.embedded import EmbeddedPostgres
from tuskbase.tokens import Signer

ROOT = Path(__file__).resolve().parents[1]
TODO_APP = ROOT / "examples" / "todo"
TEMPLATE = "tuskbase_template"
TEST_JWT_SECRET = "test-secret-test-secret-test-secret-0123456789"
_database_names = itertools.count()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    folder = Path(tempfile.mkdtemp(prefix="tuskbase-test-"))
    os.chmod(folder, 0o755)
    server = EmbeddedPostgres(folder, free_port(), extra_options={"fsync": "off", "synchronous_commit": "off",
                                                                  "full_page_writes": "off"})
    server.start(log=lambda _line: None)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_database(pg_server: EmbeddedPostgres) -> str:
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f'create database "{TEMPLATE}"')
    url = pg_server.dsn(TEMPLATE)
    migrate.migrate(url, TODO_APP)
    policies.apply(url, TODO_APP)
    return TEMPLATE


def create_database(pg_server: EmbeddedPostgres, template: str) -> str:
    name = f"t_{os.getpid()}_{next(_database_names)}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{template}" strategy file_copy')
    return name


def drop_database(pg_server: EmbeddedPostgres, name: str) -> None:
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        # Replication slots pin a database; a test that made one may not have dropped it.
        for (slot,) in conn.execute("select slot_name from pg_replication_slots where database = %s", (name,)):
            conn.execute("select pg_drop_replication_slot(%s)", (slot,))
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def database(pg_server: EmbeddedPostgres, template_database: str) -> Iterator[str]:
    """The URL (superuser) of a fresh database cloned from the migrated template."""
    name = create_database(pg_server, template_database)
    try:
        yield pg_server.dsn(name)
    finally:
        drop_database(pg_server, name)


@pytest.fixture
def settings(database: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database,
        data_dir=tmp_path / "data",
        app_dir=TODO_APP,
        jwt_secret=TEST_JWT_SECRET,
        db_pool_min=1,
        db_pool_max=4,
    )


@pytest.fixture
def admin(database: str) -> Iterator[psycopg.Connection]:
    """A superuser connection to the test's database, autocommit, for arranging and checking state."""
    with psycopg.connect(database, autocommit=True) as conn:
        yield conn


@dataclass
class Api:
    """A running API: its base URL and the keys and tokens tests need."""

    url: str
    settings: Settings
    signer: Signer
    _users: dict[str, str] = field(default_factory=dict)

    @property
    def anon_key(self) -> str:
        return self.signer.api_key("anon")

    @property
    def service_key(self) -> str:
        return self.signer.api_key("service_role")

    def user_token(self, user_id: uuid.UUID | str, **claims: Any) -> str:
        """An access token for an authenticated user, as the auth service would sign it."""
        now = int(time.time())
        body = {"sub": str(user_id), "role": "authenticated", "aud": "authenticated", "iat": now,
                "exp": now + 3600, "iss": self.settings.jwt_issuer, **claims}
        return self.signer.sign(body)

    def headers(self, token: str | None = None) -> dict[str, str]:
        headers = {"apikey": self.anon_key}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers


class _ServerThread(threading.Thread):
    def __init__(self, app: Any, port: int) -> None:
        super().__init__(daemon=True)
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)

    def run(self) -> None:
        asyncio.run(self.server.serve())

    def wait_started(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test API server did not start")
            time.sleep(0.02)


@contextlib.contextmanager
def serve_api(settings: Settings) -> Iterator[Api]:
    """The real API with `settings`, over HTTP on a loopback port, until the block ends."""
    from tuskbase.app import create_app

    port = free_port()
    server = _ServerThread(create_app(settings), port)
    server.start()
    server.wait_started()
    try:
        yield Api(url=f"http://127.0.0.1:{port}", settings=settings, signer=Signer.from_settings(settings))
    finally:
        server.server.should_exit = True
        server.join(10)


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    """The real API over HTTP on a loopback port, serving the test's own database."""
    with serve_api(settings) as served:
        yield served


@contextlib.contextmanager
def serve_process(database: str, data_dir: Path, output: Any = subprocess.DEVNULL,
                  **settings: str) -> Iterator[str]:
    """`tuskbase serve` as its own process (granian, as deployed) on a free port, serving the todo app with the
    test secret and the given TUSKBASE_* settings (`log_format="json"`); yields its base URL once /ready answers
    200, and stops it with SIGTERM afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUSKBASE_", "PROMETHEUS_"))}
    env.update({"TUSKBASE_DATABASE_URL": database, "TUSKBASE_PORT": str(port), "TUSKBASE_JWT_SECRET": TEST_JWT_SECRET,
                "TUSKBASE_APP_DIR": str(TODO_APP), "TUSKBASE_DATA_DIR": str(data_dir)})
    env.update({f"TUSKBASE_{name.upper()}": value for name, value in settings.items()})
    server = subprocess.Popen([sys.executable, "-m", "tuskbase.cli", "serve"], env=env, stdout=output,
                              stderr=output)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "tuskbase serve did not start"
            time.sleep(0.2)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
