"""Sync engine figures, each against a ceiling measured in the same run on the same database:

1. feed throughput (changes/s persisted into sync.changes, slot advanced) against a decode-only read of the
   same changes (the same peek through a server-side cursor, decoded by the same pgoutput decoder, nothing
   written), each from its own slot, best of several runs;
2. commit-to-NOTIFY latency p50/p99 with writers committing 1,000 changes/s (10-row transactions every 10 ms),
   the feed running as `tuskbase feed`;
3. first pull of 100,000 rows for one user (every page of POST /sync/v1/pull at the maximum limit, over HTTP)
   against `COPY (select * from todos) TO STDOUT` of the same rows under the same user's RLS;
3b. a selective user's first pull (one list's 1,000 rows of 300,000, policy `list_id in (select ...)` over an
   indexed list_id) against COPY of the same rows selected by that index;
4. an empty incremental pull (POST /sync/v1/pull, nothing changed) against `GET /rest/v1/todos?id=eq.<id>` of
   one row, both with wrk, same user, same connections, API under granian with 1 worker; rounds alternate the
   two (BENCH_ROUNDS, default 2) and the best of each is compared.

    python -m bench.sync
    BENCH_CHANGES=100000 BENCH_SECONDS=5 BENCH_ONLY=feed,latency,first,selective,empty python -m bench.sync
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from bench.common import JWT_SECRET, api_env, database, ensure_wrk, free_port, granian_command, serve, wrk
from tuskbase.config import Settings
from tuskbase.sync.feed import PEEK, PUBLICATION, Feed
from tuskbase.sync.pgoutput import Decoder
from tuskbase.tokens import Signer

OWNER = uuid.UUID("00000000-0000-4000-8000-00000000a11c")
READER = uuid.UUID("00000000-0000-4000-8000-00000000b0b0")


def token(user: uuid.UUID) -> str:
    now = int(time.time())
    return Signer(JWT_SECRET, "tuskbase").sign({"sub": str(user), "role": "authenticated", "aud": "authenticated",
                                               "iat": now, "exp": now + 24 * 3600, "iss": "tuskbase"})


def make_list(conn: psycopg.Connection, owner: uuid.UUID) -> str:
    return str(conn.execute("insert into public.lists (owner_id, title) values (%s, 'bench') returning id",
                            (owner,)).fetchone()[0])


# -- 1. feed throughput ------------------------------------------------------------------------------------


def feed_throughput(url: str, settings: Settings, changes: int, runs: int = 2) -> None:
    """Several slots see the same changes: one is read decode-only (repeatably, by peeking), the others each by a
    full feed run (change log emptied in between); best of each, to damp a shared machine's noise."""
    feed_slots = [f"bench_feed_{i}" for i in range(runs)]
    with psycopg.connect(url, autocommit=True) as conn:
        for slot in ["bench_ceiling", *feed_slots]:
            conn.execute("select pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        list_id = make_list(conn, OWNER)
        for _ in range(changes // 1000):
            conn.execute("insert into public.todos (list_id, title, position) "
                         "select %s, 'todo ' || g, g from generate_series(1, 1000) g", (list_id,))
        conn.execute("select pg_logical_emit_message(false, 'bench', '', true)")  # flush the WAL

    probe = Feed(url, settings.replace(sync_slot="bench_ceiling"))
    probe.connect()
    probe.keys = {}
    # The ceiling: the same peek, read the same way, and decoded by the same decoder, but nothing persisted.
    ceiling, fetch_only, decoded = float("inf"), float("inf"), 0
    for decode in (True, False, True, False, True):
        decoder = Decoder(probe._key_columns)
        started = time.perf_counter()
        count = 0
        with psycopg.connect(url) as conn, conn.cursor(name="ceiling", binary=True) as cursor:
            cursor.execute(PEEK, ("bench_ceiling", None, PUBLICATION))
            while rows := cursor.fetchmany(5000):
                if decode:
                    for (data,) in rows:
                        tx = decoder.feed(data)
                        if tx is not None:
                            count += len(tx.changes)
        took = time.perf_counter() - started
        if decode:
            ceiling, decoded = min(ceiling, took), count
        else:
            fetch_only = min(fetch_only, took)
    probe.close()

    elapsed = float("inf")
    for slot in feed_slots:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("truncate sync.changes")
            conn.execute("update sync.feed_state set lsn = null, seq = 0")
        feed = Feed(url, settings.replace(sync_slot=slot))
        feed.connect()
        assert feed.try_lead()
        started = time.perf_counter()
        persisted = 0
        while (batch := feed.step()) is not None:
            persisted += batch.changes
        elapsed = min(elapsed, time.perf_counter() - started)
        feed.close()
        assert persisted == decoded == changes + 1, (persisted, decoded, changes)
    rate, ceiling_rate = persisted / elapsed, persisted / ceiling
    print(f"feed throughput: {rate:,.0f} changes/s persisted ({persisted:,} changes, {elapsed:.2f} s, best of {runs}) "
          f"| decode-only read of the same changes: {ceiling_rate:,.0f} changes/s ({ceiling:.2f} s, best of 3) "
          f"| ratio {rate / ceiling_rate:.2f} (goal >= 0.5) | for reference, fetching the slot's messages without "
          f"decoding them: {persisted / fetch_only:,.0f} changes/s", flush=True)
    with psycopg.connect(url, autocommit=True) as conn:
        for slot in ["bench_ceiling", *feed_slots]:
            conn.execute("select pg_drop_replication_slot(%s)", (slot,))


# -- 2. commit-to-NOTIFY latency ---------------------------------------------------------------------------


def notify_latency(url: str, seconds: float) -> None:
    env = api_env(url, free_port())
    feed = subprocess.Popen([sys.executable, "-m", "tuskbase.cli", "feed"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + 20
            while not conn.execute("select 1 from pg_replication_slots where database = current_database() "
                                   "and active_pid is distinct from null or confirmed_flush_lsn is not null "
                                   "and database = current_database()").fetchone():
                if time.monotonic() > deadline:
                    raise RuntimeError("the feed consumer did not create its slot")
                time.sleep(0.05)
            list_id = make_list(conn, OWNER)
            base = conn.execute("select seq from sync.feed_state").fetchone()[0]
            while conn.execute("select seq from sync.feed_state").fetchone()[0] <= base:
                if time.monotonic() > deadline:
                    raise RuntimeError("the feed consumer did not start")
                time.sleep(0.05)
            base = conn.execute("select seq from sync.feed_state").fetchone()[0]

        notified: list[tuple[int, float]] = []
        stop = threading.Event()
        ready = threading.Event()

        def listen() -> None:
            with psycopg.connect(url, autocommit=True) as listener:
                listener.execute("listen tuskbase_sync")
                ready.set()
                while not stop.is_set():
                    for note in listener.notifies(timeout=0.2):
                        notified.append((int(note.payload), time.monotonic()))

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        ready.wait(10)
        commits: list[float] = []
        with psycopg.connect(url, autocommit=True) as writer:
            transactions = int(seconds * 100)
            start = time.monotonic()
            for index in range(transactions):
                target = start + index * 0.01
                pause = target - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                with writer.transaction():
                    writer.execute("insert into public.todos (list_id, title) "
                                   "select %s, 'live' from generate_series(1, 10)", (list_id,))
                commits.append(time.monotonic())
        time.sleep(1.0)
        stop.set()
        thread.join(5)
    finally:
        feed.send_signal(signal.SIGTERM)
        feed.wait(15)
    latencies = []
    position = 0
    for index, committed in enumerate(commits):
        last_seq = base + (index + 1) * 10
        while position < len(notified) and notified[position][0] < last_seq:
            position += 1
        if position == len(notified):
            raise RuntimeError(f"no NOTIFY for transaction {index}")
        latencies.append((notified[position][1] - committed) * 1000)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"commit-to-NOTIFY at 1,000 changes/s ({len(commits)} transactions of 10 rows): p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms (goal p50 <= 20 ms, p99 <= 100 ms)", flush=True)


# -- 3. first pull against COPY ----------------------------------------------------------------------------


def first_pull(url: str, base: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("truncate public.todos")
        list_id = make_list(conn, READER)
        conn.execute("insert into public.todos (list_id, title, position) "
                     "select %s, 'todo number ' || g, g from generate_series(1, %s) g", (list_id, rows))
        conn.execute("vacuum analyze public.todos")  # else autovacuum may start on the new rows mid-measurement
    claims = json.dumps({"sub": str(READER), "role": "authenticated"})
    best_copy = float("inf")
    for _ in range(3):
        with psycopg.connect(url) as conn:
            conn.execute("select set_config('role', 'authenticated', true), "
                         "set_config('request.jwt.claims', %s, true)", (claims,))
            started = time.perf_counter()
            size = 0
            with conn.cursor().copy("copy (select * from public.todos) to stdout") as copy:
                for data in copy:
                    size += len(data)
            best_copy = min(best_copy, time.perf_counter() - started)
    headers = {"apikey": Signer(JWT_SECRET, "tuskbase").api_key("anon"), "Authorization": f"Bearer {token(READER)}"}
    best_pull = float("inf")
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        for attempt in range(3):
            started = time.perf_counter()
            cursor, pages, total_bytes, bodies = None, 0, 0, []
            while True:
                answer = http.post("/sync/v1/pull", json={"client_id": f"bench-first-{attempt}", "cursor": cursor,
                                                          "limit": 10000})
                answer.raise_for_status()
                content = answer.content
                total_bytes += len(content)
                # Only the tail (cursor, has_more) is read while timing; rows are counted afterwards.
                tail = json.loads(b"{" + content[content.rindex(b',"cursor":') + 1:])
                pages += 1
                bodies.append(content)
                cursor = tail["cursor"]
                if not tail["has_more"]:
                    break
            best_pull = min(best_pull, time.perf_counter() - started)
            received = sum(len(v) for b in bodies for c in json.loads(b)["changes"].values() for v in c.values())
            assert received == rows + 1, received
    print(f"first pull of {rows:,} rows: {best_pull:.2f} s ({pages} pages of <= 10,000, {total_bytes / 1e6:.1f} MB "
          f"JSON over HTTP) | COPY of the same rows under the same RLS: {best_copy:.2f} s ({size / 1e6:.1f} MB) "
          f"| ratio {best_copy / best_pull:.2f} (goal >= 0.3)", flush=True)


# -- 3b. a selective user's first pull ------------------------------------------------------------------------

NOTES = """
create table public.notes (
  id uuid primary key default gen_random_uuid(),
  list_id uuid not null references public.lists (id),
  body text not null
);
create index notes_list_id on public.notes (list_id);
alter table public.notes enable row level security;
grant select on public.notes to authenticated;
create policy notes_select on public.notes for select to authenticated
  using (list_id in (select m.list_id from public.list_members m where m.user_id = auth.uid()));
select sync.enable('public.notes');
"""


def selective_pull(url: str, base: str, lists: int = 300, per_list: int = 1000) -> None:
    """A user who sees one list's notes (per_list rows) of a table holding lists x per_list, spread over the
    whole heap, against COPY of the same rows by the index (what the user can see, read directly)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(NOTES)
        ids = [make_list(conn, OWNER) for _ in range(lists)]
        conn.execute("insert into public.notes (list_id, body) "
                     "select (%s::uuid[])[1 + g %% %s], 'note ' || g || repeat(' lorem', 30) "
                     "from generate_series(0, %s) g", (ids, lists, lists * per_list - 1))
        conn.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (ids[7], READER))
        conn.execute("vacuum analyze")
    same_rows = ("copy (select * from public.notes where list_id in "
                 f"(select list_id from public.list_members where user_id = '{READER}')) to stdout")
    claims = json.dumps({"sub": str(READER), "role": "authenticated"})

    def best_copy(sql: str, as_reader: bool) -> float:
        best = float("inf")
        for _ in range(5):
            with psycopg.connect(url) as conn:
                if as_reader:
                    conn.execute("select set_config('role', 'authenticated', true), "
                                 "set_config('request.jwt.claims', %s, true)", (claims,))
                started = time.perf_counter()
                with conn.cursor().copy(sql) as copy:
                    for _data in copy:
                        pass
                best = min(best, time.perf_counter() - started)
        return best

    ceiling = best_copy(same_rows, as_reader=False)
    under_rls = best_copy("copy (select * from public.notes) to stdout", as_reader=True)
    headers = {"apikey": Signer(JWT_SECRET, "tuskbase").api_key("anon"), "Authorization": f"Bearer {token(READER)}"}
    best_pull = float("inf")
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        for attempt in range(5):
            started = time.perf_counter()
            cursor, received = None, 0
            while True:
                answer = http.post("/sync/v1/pull", json={"client_id": f"bench-sel-{attempt}", "cursor": cursor,
                                                          "tables": ["notes"], "limit": 10000})
                answer.raise_for_status()
                body = answer.json()
                received += len(body["changes"]["notes"]["created"])
                cursor = body["cursor"]
                if not body["has_more"]:
                    break
            best_pull = min(best_pull, time.perf_counter() - started)
            assert received == per_list, received
    print(f"selective first pull ({per_list:,} of {lists * per_list:,} rows visible, policy `list_id in (select ...)`"
          f"): {best_pull * 1000:.1f} ms | COPY of the same rows by the index: {ceiling * 1000:.1f} ms | ratio "
          f"{ceiling / best_pull:.2f} (goal >= 0.3) | COPY of the table under the same RLS: {under_rls * 1000:.1f} ms",
          flush=True)


# -- 4. empty pull against a one-row REST read -------------------------------------------------------------


def empty_pull(url: str, base: str, seconds: int, connections: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        list_id = make_list(conn, OWNER)
        todo_id = conn.execute("insert into public.todos (list_id, title) values (%s, 'one') returning id",
                               (list_id,)).fetchone()[0]
    user_token = token(OWNER)
    headers = {"apikey": Signer(JWT_SECRET, "tuskbase").api_key("anon"), "Authorization": f"Bearer {user_token}"}
    bodies = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        for index in range(connections):
            client_id = f"bench-empty-{index}"
            cursor = None
            while True:
                answer = http.post("/sync/v1/pull", json={"client_id": client_id, "cursor": cursor,
                                                          "tables": ["todos"]})
                assert answer.status_code == 200, answer.text
                body = answer.json()
                cursor = body["cursor"]
                if not body["has_more"]:
                    break
            request = {"client_id": client_id, "cursor": cursor, "tables": ["todos"]}
            again = http.post("/sync/v1/pull", json=request).json()
            assert again["cursor"] == cursor and not again["changes"]["todos"]["created"], again
            bodies.append(json.dumps(request))
    script = ["local bodies = {" + ",".join(_lua_string(b) for b in bodies) + "}", "local i = 0",
              "request = function()", "  i = i + 1",
              '  return wrk.format("POST", "/sync/v1/pull", nil, bodies[(i % #bodies) + 1])', "end"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write("\n".join(script) + "\n")
        path = handle.name
    target = f"{base}/rest/v1/todos?id=eq.{todo_id}"
    check = httpx.get(target, headers=headers)
    assert check.status_code == 200 and len(check.json()) == 1, check.text
    post_headers = {**headers, "Content-Type": "application/json"}
    # Rounds interleave the two so that load from other processes hits both alike; the best of each is kept.
    pulls: list[float] = []
    rests: list[float] = []
    try:
        _wrk_script(f"{base}/sync/v1/pull", path, 2, connections, post_headers)  # warm-up
        wrk(target, seconds=2, connections=connections, headers=headers)
        for _ in range(int(os.environ.get("BENCH_ROUNDS", "2"))):
            pulls.append(_wrk_script(f"{base}/sync/v1/pull", path, seconds, connections, post_headers))
            rests.append(wrk(target, seconds=seconds, connections=connections, headers=headers))
    finally:
        Path(path).unlink(missing_ok=True)
    pull_rate, rest_rate = max(pulls), max(rests)
    print(f"empty incremental pull: {pull_rate:,.0f} req/s | GET /rest/v1 of one row: {rest_rate:,.0f} req/s "
          f"| ratio {pull_rate / rest_rate:.2f} (goal >= 1.0; {connections} connections, granian 1 worker; runs: "
          + ", ".join(f"{p:,.0f}/{r:,.0f}" for p, r in zip(pulls, rests, strict=True)) + ")", flush=True)


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wrk_script(url: str, script: str, seconds: int, connections: int, headers: dict[str, str]) -> float:
    ensure_wrk()
    args = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "-s", script]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw error answers from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> None:
    changes = int(os.environ.get("BENCH_CHANGES", "200000"))
    seconds = int(os.environ.get("BENCH_SECONDS", "8"))
    connections = int(os.environ.get("BENCH_CLIENTS", "32"))
    only = set(filter(None, os.environ.get("BENCH_ONLY", "feed,latency,first,selective,empty").split(",")))
    with database() as (_server, url):
        settings = Settings(database_url=url, jwt_secret=JWT_SECRET,
                            sync_feed_batch=int(os.environ.get("TUSKBASE_SYNC_FEED_BATCH", "10000")))
        # Latency first: the throughput run leaves autovacuum and checkpoint work behind it.
        if "latency" in only:
            notify_latency(url, max(5.0, seconds))
        if "feed" in only:
            feed_throughput(url, settings, changes)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("vacuum analyze")
                conn.execute("checkpoint")
        if only & {"first", "empty", "selective"}:
            port = free_port()
            # One user polls from every connection: the per-user limit (SYNC150 past 4 at once) would answer
            # most of them 429, which is not what this measures.
            env = api_env(url, port, TUSKBASE_SYNC_PER_USER_MAX=str(max(connections, 4)))
            with serve(granian_command(port, 1), env, port) as base:
                if "first" in only:
                    first_pull(url, base, 100_000)
                if "selective" in only:
                    selective_pull(url, base)
                if "empty" in only:
                    empty_pull(url, base, seconds, connections)


if __name__ == "__main__":
    main()
