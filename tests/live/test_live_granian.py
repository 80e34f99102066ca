"""The live channel under granian, the server `tuskbase serve` runs (the other tests use uvicorn)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import httpx

from tests.conftest import TEST_JWT_SECRET, TODO_APP, free_port
from tests.live.conftest import listen, position


def test_a_poke_reaches_a_websocket_client_through_granian(database, admin, running_feed, tmp_path, api):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSKBASE_")}
    env.update({"TUSKBASE_DATABASE_URL": database, "TUSKBASE_JWT_SECRET": TEST_JWT_SECRET, "TUSKBASE_PORT": str(port),
                "TUSKBASE_APP_DIR": str(TODO_APP), "TUSKBASE_DATA_DIR": str(tmp_path / "granian"),
                "TUSKBASE_LOG_LEVEL": "WARNING", "TUSKBASE_DB_POOL_MIN": "1", "TUSKBASE_DB_POOL_MAX": "4"})
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "tuskbase.app:asgi_factory",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "granian did not start"
            time.sleep(0.1)
        alice = uuid.uuid4()
        list_id = admin.execute("insert into public.lists (owner_id, title) values (%s, 'x') returning id",
                                (alice,)).fetchone()[0]
        url = (f"ws://127.0.0.1:{port}/sync/v1/live?apikey={api.anon_key}"
               f"&access_token={api.user_token(alice)}")

        async def scenario() -> None:
            listener = await listen("alice", url)
            ready = position(listener.messages[0][1])
            await asyncio.to_thread(admin.execute, "insert into public.todos (list_id, title) values (%s, 't')",
                                    (list_id,))
            await listener.wait_for(lambda m: m["type"] == "poke" and position(m) > ready, timeout=10)
            await listener.close()

        asyncio.run(scenario())
    finally:
        server.terminate()
        server.wait(15)
