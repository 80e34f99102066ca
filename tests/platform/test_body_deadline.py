"""serving.BodyDeadline in process, on a bare ASGI app: what it passes through and what it changes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tuskbase.config import Settings
from tuskbase.serving import BodyDeadline

BODY_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"4")]


def run(app: Any, messages: list[dict[str, Any]], *, delay: float = 0.0, path: str = "/rest/v1/t",
        **settings: Any) -> list[dict[str, Any]]:
    """Serve one request through the guard; the client's messages come `delay` seconds apart."""
    sent: list[dict[str, Any]] = []
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(delay)
        return queue.pop(0) if queue else await asyncio.sleep(3600)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": BODY_HEADERS, "query_string": b""}
    guard = BodyDeadline(app, Settings(body_read_timeout_s=0.2, **settings))
    asyncio.run(asyncio.wait_for(guard(scope, receive, send), 5))
    return sent


async def echo(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise RuntimeError("client went away")  # as a framework would
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_a_body_in_time_passes_untouched():
    sent = run(echo, [{"type": "http.request", "body": b"ab", "more_body": True},
                      {"type": "http.request", "body": b"cd"}], delay=0.05)
    assert sent[0] == {"type": "http.response.start", "status": 200, "headers": []}
    assert sent[1]["body"] == b"abcd"


def test_a_slow_body_gets_408_and_the_apps_complaint_goes_nowhere():
    chunks = [{"type": "http.request", "body": b"a", "more_body": True} for _ in range(10)]
    for path, code in (("/rest/v1/t", "TUSK408"), ("/sync/v1/push", "SYNC141"), ("/storage/v1/x", "TUSK408")):
        sent = run(echo, chunks, delay=0.08, path=path)
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
        assert json.loads(sent[1]["body"])["code"] == code


def test_an_answer_before_the_body_closes_the_connection():
    async def refuse(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})

    sent = run(refuse, [{"type": "http.request", "body": b"abcd"}])
    assert sent[0]["status"] == 401 and (b"connection", b"close") in sent[0]["headers"]


def test_beyond_the_readers_allowed_the_longest_sending_is_answered_first():
    """MAX_CONNECTIONS 20, HEADROOM 18: two readers at most; a third makes the first one's deadline now."""

    async def scenario() -> list[int]:
        statuses: dict[int, int] = {}
        guard = BodyDeadline(echo, Settings(body_read_timeout_s=30, max_connections=20, connection_headroom=18))

        async def client(n: int) -> None:
            async def receive() -> dict[str, Any]:
                await asyncio.sleep(3600)

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses[n] = message["status"]

            scope = {"type": "http", "method": "POST", "path": "/rest/v1/t", "headers": BODY_HEADERS}
            await guard(scope, receive, send)

        tasks = []
        for n in range(3):
            tasks.append(asyncio.create_task(client(n)))
            await asyncio.sleep(0.05)
        await asyncio.wait_for(tasks[0], 2)
        for task in tasks[1:]:
            task.cancel()
        return [statuses.get(n, 0) for n in range(3)]

    assert asyncio.run(scenario()) == [408, 0, 0]
