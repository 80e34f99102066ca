"""The live channel as Server-Sent Events (GET /sync/v1/live), for clients without WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid

import httpx

from tests.live.conftest import position
from tests.live.test_live_pokes import make_list, persisted, write


class Events:
    """One SSE stream read in the background: (event, id, data) tuples."""

    def __init__(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        self.events: list[tuple[str, str | None, dict]] = []
        self.arrived = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._read(client, url, headers))

    async def _read(self, client, url, headers) -> None:
        async with client.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            kind, ident = "message", None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("id: "):
                    ident = line[4:]
                elif line.startswith("data: "):
                    self.events.append((kind, ident, json.loads(line[6:])))
                    self.arrived.set()
                    kind, ident = "message", None

    async def wait(self, predicate, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if predicate(event):
                    return event
            assert time.monotonic() < deadline and not self.task.done(), self.events
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), max(0.01, deadline - time.monotonic()))

    def close(self) -> None:
        self.task.cancel()


def test_events_poke_the_right_user_and_last_event_id_catches_up(api, admin, running_feed):
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alice_list = make_list(admin, alice, "alice's")
    bob_list = make_list(admin, bob, "bob's")
    start = persisted(admin, 2)
    url = api.url + "/sync/v1/live"

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            alice_events = Events(client, url, api.headers(api.user_token(alice)))
            bob_events = Events(client, url, api.headers(api.user_token(bob)))
            await alice_events.wait(lambda e: e[0] == "ready")
            await bob_events.wait(lambda e: e[0] == "ready")
            await write(admin, "insert into public.todos (list_id, title) values (%s, 'milk')", alice_list)
            _, ident, poke = await alice_events.wait(lambda e: e[0] == "poke" and position(e[2]) > start)
            assert ident == poke["seq"]
            await write(admin, "update public.lists set title = 'b' where id = %s", bob_list)
            _, _, bob_poke = await bob_events.wait(lambda e: e[0] == "poke" and position(e[2]) > start)
            assert position(bob_poke) > position(poke)
            assert [e[2]["seq"] for e in bob_events.events if e[0] == "poke" and position(e[2]) > start] == \
                [bob_poke["seq"]], "Bob was poked for Alice's todo"
            bob_events.close()

            # Bob comes back the way EventSource does, with the last id it saw: a change he may see meanwhile
            # is announced at once.
            await write(admin, "update public.lists set title = 'c' where id = %s", bob_list)
            await write(admin, "insert into public.todos (list_id, title) values (%s, 'sync point')", alice_list)
            _, _, point = await alice_events.wait(lambda e: e[0] == "poke" and position(e[2]) > position(bob_poke))
            headers = {**api.headers(api.user_token(bob)), "Last-Event-ID": str(bob_poke["seq"])}
            again = Events(client, url, headers)
            _, _, caught_up = await again.wait(lambda e: e[0] == "poke")
            assert position(caught_up) >= position(point)
            again.close()
            alice_events.close()

            refused = await client.get(url, headers=api.headers("not-a-token"))
            assert refused.status_code == 401 and refused.json()["code"] == "SYNC105"
            refused = await client.get(url + "?seq=x", headers=api.headers(api.user_token(bob)))
            assert refused.status_code == 400 and refused.json()["code"] == "SYNC100"

    asyncio.run(scenario())
