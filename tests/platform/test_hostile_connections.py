"""Clients that hold connections without finishing a request are dropped, and everyone else is served.

Each test starts the API as `tuskbase serve` runs it (granian with the options of `serving.granian_options`),
floods it over loopback with a bounded number of sockets, and meanwhile times a new client's REST request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import TEST_JWT_SECRET, serve_process
from tuskbase.config import Settings
from tuskbase.tokens import Signer

ANSWER_WITHIN = 1.0  # seconds a new client may wait for REST during a flood


@contextlib.contextmanager
def served(database: str, data: Path, **settings: str) -> Iterator[tuple[int, str]]:
    """`tuskbase serve` with the given TUSKBASE_* settings and no access log; yields (port, service key)."""
    with serve_process(database, data, access_log="false", **settings) as base:
        # The service key: its REST reads run a query and answer 200 (anon may not read todos).
        key = Signer.from_settings(Settings(jwt_secret=TEST_JWT_SECRET, data_dir=data)).api_key("service_role")
        yield int(base.rsplit(":", 1)[1]), key


async def probe_rest(port: int, key: str, seconds: float) -> list[float]:
    """A new client's REST read every 0.1 s for `seconds`: how long each took (a failure counts as infinite)."""
    waits = []
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                answer = await client.get(f"http://127.0.0.1:{port}/rest/v1/todos?select=id&limit=1",
                                          headers={"apikey": key, "Connection": "close"})
                waits.append(time.monotonic() - started if answer.status_code == 200 else float("inf"))
            except httpx.HTTPError:
                waits.append(float("inf"))
            await asyncio.sleep(0.1)
    return waits


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server has closed the connection (after whatever it sent)."""
    try:
        while True:
            if not await asyncio.wait_for(reader.read(65536), 0.2):
                return True
    except TimeoutError:  # before OSError, of which it is a subclass
        return False
    except (ConnectionError, OSError):
        return True


def report(name: str, waits: list[float]) -> None:
    print(f"\n{name}: {len(waits)} REST probes, slowest {max(waits) * 1000:.0f} ms, "
          f"median {sorted(waits)[len(waits) // 2] * 1000:.1f} ms")


def test_idle_sockets_beyond_the_cap_are_dropped_and_new_clients_served(database, tmp_path):
    """More silent sockets than the connection cap: they are closed after the header-read timeout, and a new
    client waits less than a second meanwhile. A keep-alive connection left idle is closed the same way."""
    cap, flood = 200, 300
    with served(database, tmp_path / "data", max_connections=str(cap), connection_headroom="50",
                header_read_timeout_s="0.5") as (port, key):

        async def scenario() -> tuple[list[float], int, bool]:
            sockets = [await asyncio.open_connection("127.0.0.1", port) for _ in range(flood)]
            kept_alive_reader, kept_alive = await asyncio.open_connection("127.0.0.1", port)
            kept_alive.write(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            await kept_alive.drain()
            waits = await probe_rest(port, key, 3.0)
            # All checked at once, right after the probes: 3 s after they opened, well before any default timeout.
            closed = await asyncio.gather(*(closed_by_server(reader) for reader, _writer in sockets))
            kept_alive_closed = await closed_by_server(kept_alive_reader)
            for _reader, writer in [*sockets, (kept_alive_reader, kept_alive)]:
                writer.close()
            return waits, sum(closed), kept_alive_closed

        waits, closed, kept_alive_closed = asyncio.run(scenario())
    report("idle flood", waits)
    assert closed == flood
    assert kept_alive_closed
    assert waits and max(waits) < ANSWER_WITHIN


def test_the_issues_idle_flood_leaves_the_api_answering_with_default_settings(database, tmp_path):
    """1,030 silent sockets (the issue's figure) against the default settings: REST still answers at once."""
    with served(database, tmp_path / "data") as (port, key):

        async def scenario() -> list[float]:
            sockets = [await asyncio.open_connection("127.0.0.1", port) for _ in range(1030)]
            waits = await probe_rest(port, key, 1.5)
            for _reader, writer in sockets:
                writer.close()
            return waits

        waits = asyncio.run(scenario())
    report("1,030 idle sockets, default settings", waits)
    assert waits and max(waits) < ANSWER_WITHIN


SLOW_TARGETS = [("/rest/v1/todos",), ("/auth/v1/signup",), ("/sync/v1/push",)]  # each answers in its own format


def slow_request(path: str, key: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\napikey: {key}\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000\r\n\r\n").encode()


def parse_answer(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}


def test_slow_bodies_are_answered_408_and_new_clients_served(database, tmp_path):
    """Several hundred requests announcing 100 kB and sending 2 bytes every 2 s, more than the connection cap
    minus its headroom: the longest-sending ones make room (408), the rest time out (408), in the format of
    their surface, and a new client waits less than a second throughout."""
    cap, headroom, flood = 300, 100, 400
    with served(database, tmp_path / "data", max_connections=str(cap), connection_headroom=str(headroom),
                body_read_timeout_s="1.5") as (port, key):

        async def trickle(path: str) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(slow_request(path, key))
            received = b""
            try:
                while True:
                    await writer.drain()
                    try:
                        chunk = await asyncio.wait_for(reader.read(65536), 2.0)
                    except TimeoutError:
                        writer.write(b"[{")
                        continue
                    if not chunk:
                        return received
                    received += chunk
            except (ConnectionError, OSError):
                return received
            finally:
                writer.close()

        async def scenario() -> tuple[list[float], list[bytes]]:
            flood_tasks = [asyncio.create_task(trickle(SLOW_TARGETS[i % 3][0])) for i in range(flood)]
            waits = await probe_rest(port, key, 4.0)
            answers = await asyncio.wait_for(asyncio.gather(*flood_tasks), 30)
            return waits, answers

        waits, answers = asyncio.run(scenario())
    report("slow-body flood", waits)
    assert waits and max(waits) < ANSWER_WITHIN
    dropped = [a for a in answers if a]
    assert len(dropped) == flood, f"{flood - len(dropped)} slow clients got no answer"
    by_surface: dict[str, tuple[int, dict]] = {}
    for i, raw in enumerate(answers):
        by_surface.setdefault(SLOW_TARGETS[i % 3][0], parse_answer(raw))
    assert by_surface["/rest/v1/todos"] == (408, {"code": "TUSK408", "details": None, "hint": None,
                                                  "message": "the request body was not received in time"})
    assert by_surface["/auth/v1/signup"][0] == 408
    assert by_surface["/auth/v1/signup"][1]["error_code"] == "request_timeout"
    assert by_surface["/sync/v1/push"] == (408, {"code": "SYNC141",
                                                 "message": "the request body was not received in time"})


def test_the_sync_code_of_the_body_deadline_is_syncs_own():
    from tuskbase import serving
    from tuskbase.sync.errors import BODY_TIMEOUT

    assert (serving.SYNC_CODE, serving.REQUEST_TIMEOUT) == BODY_TIMEOUT


def test_live_connections_outlive_the_header_timeout(database, tmp_path):
    """An SSE stream and a WebSocket are requests already under way: the header-read timeout that drops silent
    sockets does not cut them."""
    from websockets.asyncio.client import connect

    data = tmp_path / "data"
    signer = Signer.from_settings(Settings(jwt_secret=TEST_JWT_SECRET, data_dir=data))
    now = int(time.time())
    token = signer.sign({"sub": "6f1c7e54-9c1e-4a53-9d0a-3f5b9d8f0a11", "role": "authenticated",
                         "aud": "authenticated", "iat": now, "exp": now + 3600, "iss": "tuskbase"})
    anon = signer.api_key("anon")
    with served(database, data, header_read_timeout_s="0.5") as (port, _key):

        async def scenario() -> tuple[bool, bytes, dict]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET /sync/v1/live HTTP/1.1\r\nHost: t\r\napikey: {anon}\r\n"
                         f"Authorization: Bearer {token}\r\n\r\n".encode())
            await writer.drain()
            first = b""
            while b"event: ready" not in first:  # the headers and the first event may come apart
                chunk = await asyncio.wait_for(reader.read(65536), 5)
                assert chunk, first
                first += chunk
            url = f"ws://127.0.0.1:{port}/sync/v1/live?apikey={anon}&access_token={token}"
            async with connect(url) as socket:
                ready = json.loads(await asyncio.wait_for(socket.recv(), 5))
                assert ready["type"] == "ready"
                await asyncio.sleep(2.0)  # four header timeouts
                sse_closed = await closed_by_server(reader)
                await socket.send(json.dumps({"type": "ping"}))
                pong = json.loads(await asyncio.wait_for(socket.recv(), 5))
            writer.close()
            return sse_closed, first, pong

        sse_closed, first, pong = asyncio.run(scenario())
    assert b"200 OK" in first and b"event: ready" in first
    assert not sse_closed
    assert pong == {"type": "pong"}
