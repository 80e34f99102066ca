"""The connections of the one-statement answer of a pull with nothing new (`pull.pull(..., quick=...)`)."""

from __future__ import annotations

import asyncio
from typing import Any


class QuickConnections:
    """Connections for the one-statement fast path of `pull`: no transaction, no session state to reset.

    asyncpg's pool runs a reset query on every release (a second round trip); a connection that only ever ran
    `sync.client_state()` outside a transaction has nothing to reset. A connection that failed is dropped.
    """

    def __init__(self, connect: Any, size: int) -> None:
        self.connect = connect
        self.size = size
        self.idle: list[Any] = []
        self.slots = asyncio.Semaphore(size)

    async def run(self, function: Any, *args: Any) -> Any:
        async with self.slots:  # at most `size` connections, each reused
            conn = self.idle.pop() if self.idle else await self.connect()
            try:
                result = await function(conn, *args)
            except BaseException:
                conn.terminate()
                raise
            if not conn.is_closed():
                self.idle.append(conn)
            return result

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            await conn.close()
