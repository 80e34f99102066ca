"""Poke amplification: 2,000 live clients of whom 10 may see the written rows, against nobody connected.

Setup: a throwaway embedded Postgres with the example todo app, the feed consumer (`tuskbase feed`, its own
process), the API under granian (1 worker), and N WebSocket clients of N distinct users in this process. Every
user owns a list of their own; one more list, owned by user 0 and shared with users 1..9, is where the writes go,
so exactly 10 users may see them and the other N - 10 share nothing with the writer. A client that is poked pulls
(`POST /sync/v1/pull` until `has_more` is false), as a real client does; their first sync is done
before the measures.

1. pokes per write: WRITES_PACED inserts of 15 todos each, one at a time, each followed by a wait for the 10
   pokes; the pokes every client got are counted (goal: exactly 10 per write, none to the strangers);
2. insert throughput: WRITES inserts of 15 todos, back to back through `POST /rest/v1/todos` as user 0, with
   the N clients connected, against the same inserts with nobody connected (goal: ratio >= 0.8); measured twice
   with the clients connected: while poked clients only count their pokes (the cost of the hub alone) and while
   they pull (the whole cost of keeping 10 devices in sync);
3. REST latency: `GET /rest/v1/lists?select=id&limit=1` as user 1, one request every 10 ms from this process,
   while the inserts of 2. run; p50 with the clients connected against p50 with nobody connected, and against
   idle (no writes, nobody connected) (goal: <= 1.5x).

    python -m bench.live.strangers [--clients 2000] [--seeing 10] [--writes 1000] [--rows 15] [--rounds 3] [--spread]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import uuid

import httpx
import psycopg

from bench.common import JWT_SECRET, api_env, database, free_port, granian_command, serve
from bench.live.__main__ import Client, close_clients, open_clients, raise_fd_limit, wait_for_slot
from tuskbase.tokens import Signer

WRITES_PACED = 20
REST_EVERY = 0.010


def prepare(url: str, n: int, seeing: int) -> tuple[list[uuid.UUID], list[str], str]:
    users = [uuid.uuid4() for _ in range(n)]
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        own = [str(conn.execute("insert into public.lists (owner_id, title) values (%s, 'mine') returning id",
                                (u,)).fetchone()[0]) for u in users]
        shared = str(conn.execute("insert into public.lists (owner_id, title) values (%s, 'shared') returning id",
                                  (users[0],)).fetchone()[0])
        cur.executemany("insert into public.list_members (list_id, user_id) values (%s, %s)",
                        [(shared, u) for u in users[1:seeing]])
    return users, own, shared


class Bench:
    def __init__(self, base: str, url: str, users: list[uuid.UUID], own: list[str], shared: str, seeing: int,
                 rows: int, spread: bool = False) -> None:
        signer = Signer(secret=JWT_SECRET, issuer="tuskbase")
        now = int(time.time())
        self.base, self.url, self.shared, self.seeing, self.rows = base, url, shared, seeing, rows
        self.anon = signer.api_key("anon")
        self.tokens = [signer.sign({"sub": str(u), "role": "authenticated", "iat": now, "exp": now + 7200})
                       for u in users]
        self.own, self.spread, self.count = own, spread, 0
        self.http = httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=64))

    def headers(self, i: int) -> dict[str, str]:
        return {"apikey": self.anon, "authorization": f"Bearer {self.tokens[i]}"}

    async def connect(self) -> list[Client]:
        ws = self.base.replace("http://", "ws://") + "/sync/v1/live"
        return await open_clients([f"{ws}?apikey={self.anon}&access_token={t}" for t in self.tokens])

    async def pull(self, i: int, cursor: str | None) -> str:
        """Pull until `has_more` is false; the new cursor."""
        while True:
            answer = (await self.http.post("/sync/v1/pull", headers=self.headers(i), json={
                "client_id": f"bench-{i}", "cursor": cursor, "limit": 1000})).json()
            cursor = answer["cursor"]
            if not answer.get("has_more"):
                return cursor

    async def puller(self, i: int, client: Client, cursor: str) -> None:
        """Pull whenever poked, as a client does (pokes that arrive during a pull make one more pull)."""
        while True:
            await client.event.wait()
            client.event.clear()
            cursor = await self.pull(i, cursor)

    async def rest_probe(self, stop: asyncio.Event, latencies: list[float]) -> None:
        headers = self.headers(1)
        while not stop.is_set():
            t0 = time.perf_counter()
            response = await self.http.get("/rest/v1/lists?select=id&limit=1", headers=headers)
            latencies.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.text
            await asyncio.sleep(REST_EVERY)

    async def idle_rest(self, seconds: float) -> list[float]:
        latencies: list[float] = []
        stop = asyncio.Event()
        task = asyncio.create_task(self.rest_probe(stop, latencies))
        await asyncio.sleep(seconds)
        stop.set()
        await task
        return latencies

    def audience(self) -> range:
        """The clients who may see the next write: users 0..seeing-1 (the shared list), or with --spread the owner
        of the next stranger's own list (each write goes to another list: a group the hub has not seen)."""
        if not self.spread:
            return range(self.seeing)
        owner = self.seeing + self.count % (len(self.own) - self.seeing)
        return range(owner, owner + 1)

    async def write(self) -> None:
        """One insert of `rows` todos, through REST as the owner of the list (see `audience`)."""
        owner = self.audience()[0]
        target = self.own[owner] if self.spread else self.shared
        self.count += 1
        response = await self.http.post("/rest/v1/todos", json=[{"list_id": target, "title": "x"}] * self.rows,
                                        headers={**self.headers(owner), "prefer": "return=minimal"})
        assert response.status_code == 201, response.text

    async def inserts(self, writes: int) -> tuple[float, list[float]]:
        """Seconds for `writes` inserts back to back, and the REST latencies measured meanwhile."""
        latencies: list[float] = []
        stop = asyncio.Event()
        probe = asyncio.create_task(self.rest_probe(stop, latencies))
        try:
            t0 = time.perf_counter()
            for _ in range(writes):
                await self.write()
            elapsed = time.perf_counter() - t0
        finally:
            stop.set()
            await probe
        return elapsed, latencies

    async def paced(self, clients: list[Client], writes: int) -> tuple[int, int, int]:
        """(pokes to users who may see the rows, pokes to the others, writes whose pokes did not all arrive)."""
        late = seen = strangers = 0
        for _ in range(writes):
            audience = [clients[i] for i in self.audience()]
            before = [c.pokes for c in clients]
            await self.write()
            deadline = time.monotonic() + 3
            while any(c.pokes == before[i] for c, i in zip(audience, self.audience_of(audience, clients),
                                                             strict=True)):
                if time.monotonic() > deadline:
                    late += 1
                    break
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.1)  # a poke that should not come has time to come
            delta = [c.pokes - b for c, b in zip(clients, before, strict=True)]
            inside = sum(delta[i] for i in self.audience_of(audience, clients))
            seen += inside
            strangers += sum(delta) - inside
        return seen, strangers, late

    @staticmethod
    def audience_of(audience: list[Client], clients: list[Client]) -> list[int]:
        return [clients.index(c) for c in audience]


async def connected_round(bench: Bench, args: argparse.Namespace, result: dict) -> None:
    t0 = time.perf_counter()
    clients = await bench.connect()
    result.setdefault("connect_s", time.perf_counter() - t0)
    pullers: list[asyncio.Task] = []
    try:
        await asyncio.sleep(1.0)
        if "seen" not in result:
            result["seen"], result["strangers"], result["late"] = await bench.paced(clients, WRITES_PACED)
        for pulling in (False,) if args.spread else (False, True):
            if pulling:  # the first sync happens before the measure, as it does for a client coming online
                cursors = await asyncio.gather(*(bench.pull(i, None) for i in range(args.seeing)))
                for c in clients[:args.seeing]:
                    c.event.clear()
                pullers = [asyncio.create_task(bench.puller(i, c, cursor))
                           for i, (c, cursor) in enumerate(zip(clients[:args.seeing], cursors, strict=True))]
            strangers = sum(c.pokes for c in clients[args.seeing:])
            seen = sum(c.pokes for c in clients[:args.seeing])
            elapsed, rest = await bench.inserts(args.writes)
            await asyncio.sleep(1.0)
            name = "pull" if pulling else "quiet"
            result[f"{name}_s"] = min(elapsed, result.get(f"{name}_s", elapsed))
            result[f"{name}_rest"] = min(statistics.median(rest), result.get(f"{name}_rest", 1e9))
            result["run_strangers"] = result.get("run_strangers", 0) + sum(c.pokes for c in clients[args.seeing:]) \
                - strangers
            result[f"{name}_seen"] = sum(c.pokes for c in clients[:args.seeing]) - seen
    finally:
        for task in pullers:
            task.cancel()
        await close_clients(clients)


async def run(base: str, url: str, users: list[uuid.UUID], own: list[str], shared: str, args: argparse.Namespace
              ) -> dict:
    """Rounds of (nobody connected, then N connected), each figure the best of its rounds: the machine is shared."""
    bench = Bench(base, url, users, own, shared, args.seeing, args.rows, args.spread)
    result: dict = {}
    try:
        await bench.idle_rest(0.5)  # warm up
        await bench.inserts(20)
        for _ in range(args.rounds):
            result["idle"] = min(statistics.median(await bench.idle_rest(3.0)), result.get("idle", 1e9))
            elapsed, rest = await bench.inserts(args.writes)
            result["alone_s"] = min(elapsed, result.get("alone_s", elapsed))
            result["alone_rest"] = min(statistics.median(rest), result.get("alone_rest", 1e9))
            await asyncio.sleep(1.0)
            await connected_round(bench, args, result)
            await asyncio.sleep(1.0)
    finally:
        await bench.http.aclose()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.live.strangers")
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--seeing", type=int, default=10)
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-interval", type=int, help="TUSKBASE_SYNC_LIVE_BATCH_INTERVAL_MS of the API")
    parser.add_argument("--spread", action="store_true",
                        help="each write into another stranger's own list (1 may see it; every write a new group)")
    args = parser.parse_args(argv if argv is not None else [])
    raise_fd_limit(4 * args.clients + 256)
    with database() as (_server, url):
        users, own, shared = prepare(url, args.clients, args.seeing)
        port = free_port()
        env = api_env(url, port, TUSKBASE_SYNC_LIVE_MAX_CONNECTIONS=str(args.clients + 100),
                      **({} if args.batch_interval is None
                         else {"TUSKBASE_SYNC_LIVE_BATCH_INTERVAL_MS": str(args.batch_interval)}))
        feed = subprocess.Popen([sys.executable, "-m", "tuskbase.cli", "feed"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_slot(url, feed)
            with serve(granian_command(port), env, port) as base:
                r = asyncio.run(run(base, url, users, own, shared, args))
        finally:
            feed.terminate()
            feed.wait(15)
    ms = 1000
    n, k = args.clients, 1 if args.spread else args.seeing
    print(f"{n} live clients of {n} users, {k} of whom may see each write ({args.rows}-row inserts"
          f"{', each into another list' if args.spread else ''}); connected "
          f"in {r['connect_s']:.1f}s; API: granian, 1 worker; best of {args.rounds} rounds")
    print(f"pokes per write        {r['seen'] / WRITES_PACED:6.2f} to the {k} who may see it (goal {k}), "
          f"{r['strangers'] / WRITES_PACED:.2f} to the {n - k} others (goal 0)  ({WRITES_PACED} paced writes, "
          f"{r['late']} with a poke missing after 3 s)"
          + ("" if args.spread else f"; {r['run_strangers']} pokes to the others in all runs"))
    for name, what in (("quiet", "poked clients do not pull"), ("pull", "poked clients pull"))[:1 + (not args.spread)]:
        print(f"{what}:")
        print(f"  insert throughput    {args.writes / r[f'{name}_s']:6.0f} writes/s connected, "
              f"{args.writes / r['alone_s']:.0f} with nobody connected: ratio {r['alone_s'] / r[f'{name}_s']:.2f} "
              f"(goal >= 0.8); {r[f'{name}_seen']} pokes to the {k} in the last run")
        print(f"  REST p50             {r[f'{name}_rest'] * ms:6.2f} ms during the inserts connected, "
              f"{r['alone_rest'] * ms:.2f} ms during them with nobody connected, {r['idle'] * ms:.2f} ms idle: "
              f"{r[f'{name}_rest'] / r['alone_rest']:.2f}x and {r[f'{name}_rest'] / r['idle']:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main(sys.argv[1:])
