"""The ceiling of the live channel's fan-out: a bare WebSocket server (the `websockets` library, no app, no
database) that, once told to, sends small JSON messages to every connected client as fast as it can.

    python -m bench.live.bare PORT
Connect to ws://127.0.0.1:PORT/ ; the client that sends "go <seconds>" starts the broadcast for that long.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from websockets.asyncio.server import ServerConnection, serve

clients: set[ServerConnection] = set()


async def broadcast(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    seq = 0
    while time.monotonic() < deadline:
        seq += 1
        message = json.dumps({"type": "poke", "seq": seq})
        for client in list(clients):
            try:
                await client.send(message)
            except Exception:  # a client that left
                clients.discard(client)


async def handler(socket: ServerConnection) -> None:
    clients.add(socket)
    try:
        await socket.send(json.dumps({"type": "ready", "seq": 0}))
        async for text in socket:
            if isinstance(text, str) and text.startswith("go "):
                clients.discard(socket)
                await broadcast(float(text.split()[1]))
                await socket.send("done")
    finally:
        clients.discard(socket)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, max_queue=None, ping_interval=None):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
