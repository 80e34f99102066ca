"""Costs of the sync-pull guards, each against a ceiling measured in the same run:

1. the JSON depth bound (`sync/body.py`): check + msgspec decode of a 1,000-row push body against msgspec decode
   alone; and the worst body the bound must scan (1 MiB of brackets) against decoding a 1 MiB push body;
2. a poll (a pull with nothing changed) of a user who sees BENCH_ROWS todos when the todos' policies read an
   untracked table (list_members not in sync.tables: the todos are re-diffed on every pull) against the same
   user's first pull of those rows (what a poll would cost if it re-sent everything), and against a poll with
   every input tracked ("nothing new": one round trip). Over HTTP, best of BENCH_ROUNDS.

    python -m bench.sync_pull
    BENCH_ROWS=20000 BENCH_ROUNDS=5 python -m bench.sync_pull
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable

import httpx
import msgspec
import psycopg

from bench.common import JWT_SECRET, api_env, database, free_port, granian_command, serve
from tuskbase.config import Settings
from tuskbase.sync.body import check_depth
from tuskbase.sync.errors import SyncError
from tuskbase.sync.feed import Feed
from tuskbase.tokens import Signer


def best(function: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def depth_bound() -> None:
    settings = Settings()
    rows = [{"id": str(uuid.uuid4()), "list_id": str(uuid.uuid4()), "title": f"todo [{i}] \"quoted\" {{x}}",
             "done": i % 2 == 0, "meta": {"tags": ["a", "b", {"c": [1, 2]}]}} for i in range(1000)]
    body = json.dumps({"client_id": "phone", "mutation_id": "m", "changes": {"todos": {"created": rows}}}).encode()

    def checked() -> None:
        for _ in range(20):
            check_depth(body, settings)
            msgspec.json.decode(body)

    def bare() -> None:
        for _ in range(20):
            msgspec.json.decode(body)

    ratio = best(checked, 7) / best(bare, 7)
    print(f"depth bound, 1,000-row push body ({len(body) // 1024} KiB): check + decode / decode = {ratio:.2f}")
    big_rows = rows * (settings.max_body_bytes // len(body))  # a push body just under the body limit
    big = json.dumps({"changes": {"todos": {"created": big_rows}}}).encode()
    brackets = b"[" * (settings.max_body_bytes // 2) + b"]" * (settings.max_body_bytes // 2)

    def refuse() -> None:
        with contextlib.suppress(SyncError):  # the refusal is the point
            check_depth(brackets, settings)

    worst = best(refuse, 5) / best(lambda: msgspec.json.decode(big), 5)
    print(f"depth bound, 1 MiB of brackets refused / a {len(big) // 1024} KiB push body decoded = {worst:.2f}")


def token(user: uuid.UUID) -> str:
    now = int(time.time())
    return Signer(JWT_SECRET, "tuskbase").sign({"sub": str(user), "role": "authenticated", "aud": "authenticated",
                                               "iat": now, "exp": now + 3600, "iss": "tuskbase"})


def untracked_poll(rows: int, rounds: int) -> None:
    with database() as (_server, url):
        with psycopg.connect(url, autocommit=True) as conn:
            owner, reader = uuid.uuid4(), uuid.uuid4()
            mine = conn.execute("insert into public.lists (owner_id, title) values (%s, 'r') returning id",
                                (owner,)).fetchone()[0]
            conn.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (mine, reader))
            conn.execute("insert into public.todos (list_id, title) select %s, 't' || g from generate_series(1, %s) g",
                         (mine, rows))
            others = conn.execute("insert into public.lists (owner_id, title) values (%s, 'o') returning id",
                                  (uuid.uuid4(),)).fetchone()[0]
            conn.execute("insert into public.todos (list_id, title) select %s, 'o' || g from generate_series(1, %s) g",
                         (others, rows))
        feed = Feed(url, Settings(database_url=url, jwt_secret=JWT_SECRET))
        feed.connect()
        assert feed.try_lead()
        feed.flush_wal()
        while feed.step() is not None:
            pass
        port = free_port()
        with serve(granian_command(port), api_env(url, port), port) as base:
            headers = {"apikey": Signer(JWT_SECRET, "tuskbase").api_key("anon"),
                       "Authorization": f"Bearer {token(reader)}"}
            http = httpx.Client(base_url=base, headers=headers, timeout=300)

            def sync(client: str, cursor: str | None) -> str:
                while True:
                    answer = http.post("/sync/v1/pull", json={"client_id": client, "cursor": cursor,
                                                              "limit": 10000}).json()
                    cursor = answer["cursor"]
                    if not answer["has_more"]:
                        return cursor

            cursors = {}

            def first() -> None:
                client = f"first-{uuid.uuid4().hex[:8]}"
                cursors[client] = sync(client, None)

            first_pull = best(first, rounds)
            client, cursor = next(iter(cursors.items()))
            tracked = best(lambda: sync(client, cursor), rounds)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("select sync.disable('public.list_members')")
            time.sleep(1.5)  # the API's catalog cache (1 s)
            client = f"untracked-{uuid.uuid4().hex[:8]}"
            cursor = sync(client, None)
            untracked = best(lambda: sync(client, cursor), rounds)
        feed.close()
    print(f"poll of a user seeing {rows} of {2 * rows} todos: untracked inputs (re-diff) {untracked * 1000:.1f} ms"
          f" = {untracked / first_pull:.2f} x first pull ({first_pull * 1000:.1f} ms),"
          f" {untracked / tracked:.0f} x a tracked poll ({tracked * 1000:.2f} ms)")


def main() -> None:
    depth_bound()
    untracked_poll(int(os.environ.get("BENCH_ROWS", "20000")), int(os.environ.get("BENCH_ROUNDS", "3")))


if __name__ == "__main__":
    main()
