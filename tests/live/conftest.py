"""Fixtures of the live-channel tests: the real feed consumer running in a thread, and a WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import TEST_JWT_SECRET
from tuskbase.sync.feed import Feed
from tuskbase.sync.live import Positions

# Positions the live channel sends are sealed seqs; the tests hold the server's secret and open them.
POSITIONS = Positions(TEST_JWT_SECRET)


def position(message: dict[str, Any]) -> int:
    """The feed seq behind a ready or poke message's opaque position."""
    return POSITIONS.open(message["seq"])


@pytest.fixture
def settings(settings):
    # The tests assert which batch a write lands in: each write is its own batch when batches are not spaced out
    # (the default spacing, sync_live_batch_interval_ms, coalesces a stream of writes: bench/live measures it).
    return settings.replace(sync_live_batch_interval_ms=0)


@pytest.fixture
def running_feed(database, settings) -> Iterator[Feed]:
    """The feed consumer of the test database, leading and looping as `tuskbase feed` does."""
    consumer = Feed(database, settings)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True, name="feed")
    thread.start()
    deadline = time.monotonic() + 20
    with psycopg.connect(database, autocommit=True) as conn:
        # Leading is not enough: changes count from the moment its slot exists.
        while not conn.execute("select exists (select from pg_replication_slots where database = current_database())"
                               ).fetchone()[0] or not consumer.tables:
            assert thread.is_alive() and time.monotonic() < deadline, "the feed consumer did not start"
            time.sleep(0.01)
    try:
        yield consumer
    finally:
        stop.set()
        thread.join(10)


def live_url(api, token: str | None = None, seq: int | None = None) -> str:
    url = api.url.replace("http://", "ws://") + "/sync/v1/live?apikey=" + api.anon_key
    if token:
        url += "&access_token=" + token
    if seq is not None:
        url += f"&seq={POSITIONS.seal(seq)}"
    return url


@dataclass
class Listener:
    """One live connection; `messages` collects what the server sent, with the time it arrived."""

    name: str
    socket: ClientConnection
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task = None  # type: ignore[assignment]  (set by listen())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in self.socket:
                self.messages.append((time.perf_counter(), json.loads(text)))
                self.arrived.set()
        self.arrived.set()

    def pokes(self) -> list[tuple[float, int]]:
        return [(at, position(m)) for at, m in self.messages if m["type"] == "poke"]

    async def wait_for(self, predicate, timeout: float = 5.0) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            for at, message in self.messages:
                if predicate(message):
                    return at, message
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.task.done():
                closed = f"closed {self.socket.close_code} {self.socket.close_reason!r}" if self.task.done() else "open"
                raise AssertionError(f"{self.name}: no matching message in {timeout}s ({closed}); got {self.messages}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)

    async def close(self) -> None:
        await self.socket.close()
        if self.task is not None:
            self.task.cancel()


async def listen(name: str, url: str) -> Listener:
    socket = await connect(url, open_timeout=10)
    listener = Listener(name, socket)
    listener.task = asyncio.get_running_loop().create_task(listener._read())
    await listener.wait_for(lambda m: m["type"] == "ready")
    return listener


async def refused(url: str) -> tuple[list[dict[str, Any]], int | None]:
    """Connect, read until the server closes; (messages, close code)."""
    async with connect(url, open_timeout=10) as socket:
        messages = []
        with contextlib.suppress(ConnectionClosed):
            async for text in socket:
                messages.append(json.loads(text))
        return messages, socket.close_code
