"""The live channel (/sync/v1/live) with 1,000 connected clients: commit-to-poke latency and pokes/s delivered.

Setup: a throwaway embedded Postgres with the example todo app, the feed consumer (`tuskbase feed`, its own
process), the API under granian (1 worker), and N WebSocket clients of N distinct users in this process; each user
owns a list, and one more list is shared with all of them.

- latency: a todo is inserted into one user's list (autocommit, one at a time, ~20/s); the time from sending the
  statement to that user's poke. Every other client must stay silent (counted). Printed with the breakdown: the
  feed's commit-to-NOTIFY (a LISTEN in this process) and the rest (the hub's RLS check for N users + the send).
  Ceiling in the same run: a bare `pg_notify` from one connection to a LISTEN on another.
- pokes/s: todos are inserted into the shared list as fast as one connection commits, for a few seconds; every
  client may see them, so each feed batch pokes all N clients. Ceiling in the same run: a bare WebSocket server
  (bench/live/bare.py: no app, no database) broadcasting to the same N clients as fast as it can.

    python -m bench.live [--clients 1000] [--samples 200] [--seconds 5] [--only fanout|strangers]

It runs bench/live/strangers.py first (2,000 clients of whom 10 may see the writes: pokes per write, insert
throughput and REST p50 against nobody connected); `python -m bench.live.strangers --help` for its options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
import psycopg
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import JWT_SECRET, api_env, database, free_port, granian_command, serve
from tuskbase.tokens import Signer

FEED_CHANNEL = "tuskbase_sync"


@dataclass(eq=False)
class Client:
    socket: ClientConnection
    pokes: int = 0
    last_at: float = 0.0
    event: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None

    async def read(self) -> None:
        try:
            async for text in self.socket:
                if '"poke"' in text:
                    self.pokes += 1
                    self.last_at = time.perf_counter()
                    self.event.set()
        except ConnectionClosed:
            pass


async def open_clients(urls: list[str]) -> list[Client]:
    async def one(url: str) -> Client:
        socket = await connect(url, open_timeout=60, max_queue=None, ping_interval=None)
        ready = json.loads(await socket.recv())
        assert ready["type"] == "ready", ready
        client = Client(socket)
        client.task = asyncio.get_running_loop().create_task(client.read())
        return client

    clients: list[Client] = []
    for start in range(0, len(urls), 100):
        clients += await asyncio.gather(*(one(u) for u in urls[start:start + 100]))
    return clients


async def close_clients(clients: list[Client]) -> None:
    await asyncio.gather(*(c.socket.close() for c in clients), return_exceptions=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# -- the live channel ------------------------------------------------------------------------------------------


def prepare(url: str, n: int) -> tuple[list[uuid.UUID], list[str], str]:
    users = [uuid.uuid4() for _ in range(n)]
    with psycopg.connect(url, autocommit=True) as conn:
        lists = [str(conn.execute("insert into public.lists (owner_id, title) values (%s, 'mine') returning id",
                                  (u,)).fetchone()[0]) for u in users]
        square = str(conn.execute("insert into public.lists (owner_id, title) values (%s, 'town square') "
                                  "returning id", (uuid.uuid4(),)).fetchone()[0])
        with conn.cursor() as cur:
            cur.executemany("insert into public.list_members (list_id, user_id) values (%s, %s)",
                            [(square, u) for u in users])
    return users, lists, square


async def live(base: str, url: str, users: list[uuid.UUID], lists: list[str], square: str, samples: int,
               seconds: float) -> dict[str, float]:
    signer = Signer(secret=JWT_SECRET, issuer="tuskbase")
    now = int(time.time())
    anon = signer.api_key("anon")
    ws = base.replace("http://", "ws://") + "/sync/v1/live"
    urls = [f"{ws}?apikey={anon}&access_token="
            + signer.sign({"sub": str(u), "role": "authenticated", "iat": now, "exp": now + 7200}) for u in users]
    started = time.perf_counter()
    clients = await open_clients(urls)
    connect_seconds = time.perf_counter() - started
    writer = await asyncpg.connect(url)
    listener = await asyncpg.connect(url)
    notified: list[float] = []
    await listener.add_listener(FEED_CHANNEL, lambda *_: notified.append(time.perf_counter()))
    insert = "insert into public.todos (list_id, title) values ($1::uuid, 'x')"
    try:
        await asyncio.sleep(1.0)  # settle: the connections are idle
        # Latency: one write at a time into one user's list.
        latencies, feed_part = [], []
        missed = 0
        for i in range(samples):
            target = clients[(i * 7919) % len(clients)]
            target.event.clear()
            before = target.pokes
            mark = len(notified)
            t0 = time.perf_counter()
            await writer.execute(insert, lists[(i * 7919) % len(clients)])
            try:
                await asyncio.wait_for(target.event.wait(), 5)
            except TimeoutError:
                missed += 1
                continue
            assert target.pokes == before + 1
            latencies.append(target.last_at - t0)
            if len(notified) > mark:
                feed_part.append(notified[mark] - t0)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        wrong = sum(c.pokes for c in clients) - len(latencies)

        # Throughput: writes everyone may see, as fast as one connection commits.
        for c in clients:
            c.pokes = 0
        writes = 0
        notifies_before = len(notified)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            await writer.execute(insert, square)
            writes += 1
        await asyncio.sleep(1.0)  # the last batches reach everyone
        elapsed = time.perf_counter() - t0
        batches = len(notified) - notifies_before
        delivered = sum(c.pokes for c in clients)
        last_poke = max(c.last_at for c in clients)
        window = max(last_poke - t0, seconds)
    finally:
        await writer.close()
        await listener.close()
        await close_clients(clients)
    return {
        "connect_s": connect_seconds, "p50": statistics.median(latencies), "p99": percentile(latencies, 99),
        "feed_p50": statistics.median(feed_part) if feed_part else float("nan"), "samples": len(latencies),
        "missed": missed, "wrong": wrong, "pokes": delivered, "pokes_per_s": delivered / window,
        "writes_per_s": writes / seconds, "per_client": delivered / len(clients), "elapsed": elapsed,
        "batches": batches,
    }


# -- ceilings --------------------------------------------------------------------------------------------------


async def notify_latency(url: str, samples: int) -> dict[str, float]:
    sender = await asyncpg.connect(url)
    listener = await asyncpg.connect(url)
    got = asyncio.Event()
    arrived = [0.0]

    def on_notify(*_args: object) -> None:
        arrived[0] = time.perf_counter()
        got.set()

    await listener.add_listener("bench_bare", on_notify)
    latencies = []
    try:
        for _ in range(samples):
            got.clear()
            t0 = time.perf_counter()
            await sender.execute("select pg_notify('bench_bare', '1')")
            await asyncio.wait_for(got.wait(), 5)
            latencies.append(arrived[0] - t0)
            await asyncio.sleep(0.01)
    finally:
        await sender.close()
        await listener.close()
    return {"p50": statistics.median(latencies), "p99": percentile(latencies, 99)}


async def fanout_ceiling(n: int, seconds: float) -> float:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.live.bare", str(port)], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        clients = await open_clients([f"ws://127.0.0.1:{port}/"] * n)
        trigger = await connect(f"ws://127.0.0.1:{port}/", ping_interval=None)
        await trigger.recv()
        t0 = time.perf_counter()
        await trigger.send(f"go {seconds}")
        while await trigger.recv() != "done":
            pass
        await asyncio.sleep(0.5)
        delivered = sum(c.pokes for c in clients)
        window = max(c.last_at for c in clients) - t0
        await trigger.close()
        await close_clients(clients)
        return delivered / window
    finally:
        process.terminate()
        process.wait(10)


# -- main ------------------------------------------------------------------------------------------------------


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, 4096)), hard))


def wait_for_slot(url: str, feed: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as conn:
        while not conn.execute("select exists (select from pg_replication_slots "
                               "where database = current_database())").fetchone()[0]:
            if feed.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the feed consumer did not start")
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.live")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--only", choices=("fanout", "strangers"), help="run one part (default: both)")
    args = parser.parse_args(argv if argv is not None else [])
    if args.only != "fanout":
        from bench.live import strangers

        print("-- poke amplification (bench/live/strangers.py) --", flush=True)
        strangers.main([])
        if args.only == "strangers":
            return
        print("-- latency and fan-out --", flush=True)
    raise_fd_limit(4 * args.clients + 256)
    with database() as (_server, url):
        users, lists, square = prepare(url, args.clients)
        port = free_port()
        env = api_env(url, port, TUSKBASE_SYNC_LIVE_MAX_CONNECTIONS=str(args.clients + 100))
        feed = subprocess.Popen([sys.executable, "-m", "tuskbase.cli", "feed"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_slot(url, feed)
            with serve(granian_command(port), env, port) as base:
                result = asyncio.run(live(base, url, users, lists, square, args.samples, args.seconds))
        finally:
            feed.terminate()
            feed.wait(15)
        bare = asyncio.run(notify_latency(url, args.samples))
    ceiling = asyncio.run(fanout_ceiling(args.clients, args.seconds))

    ms = 1000
    print(f"{args.clients} clients ({args.clients} users) connected in {result['connect_s']:.1f}s, held idle; "
          f"API: granian, 1 worker")
    print(f"commit-to-poke  p50 {result['p50'] * ms:6.1f} ms  p99 {result['p99'] * ms:6.1f} ms  "
          f"({result['samples']} writes, {result['missed']} missed, {result['wrong']} pokes to clients that "
          f"may not see the row)")
    print(f"  of which commit-to-NOTIFY (feed) p50 {result['feed_p50'] * ms:6.1f} ms; "
          f"ceiling: bare pg_notify to LISTEN p50 {bare['p50'] * ms:5.2f} ms  p99 {bare['p99'] * ms:5.2f} ms  "
          f"(bare/ours p50 {bare['p50'] / result['p50']:.3f})")
    print(f"pokes delivered {result['pokes_per_s']:9.0f} /s  ({result['writes_per_s']:.0f} writes/s visible to "
          f"all, {result['batches']} feed batches, {result['per_client']:.0f} pokes per client)\n"
          f"  ceiling: bare WebSocket broadcast {ceiling:9.0f} msgs/s; ours/ceiling "
          f"{result['pokes_per_s'] / ceiling:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
