"""The live channel's hub: one LISTEN connection per API process, fan-out of pokes to connected clients.

A client holds a connection (WebSocket or SSE, see routes_live.py) and is poked when data it may see changed, so it
pulls at once. A poke carries no row data and no counter: only the feed's position, sealed (`Positions`), to give
back when reconnecting.

Who is poked, for the changes of a batch (seq_from, seq_to] of `sync.changes`:

1. a TRUNCATE, a change to a table that is tracked but not served (a policy input: it may grant access to rows
   that did not change), a change log already pruned past the batch, or a batch whose checks (see 3.) would
   exceed `sync_live_check_max`: every connected user (a poke is only a hint to pull; the pull decides, and an
   empty pull is cheap);
2. a user one of whose clients was sent one of the updated or deleted keys and was not told it is gone (the sync
   engine's client view record, `sync.client_rows`): an update or delete of a row it holds, including one that
   just left its view;
3. a user who may see one of the inserted or updated rows now, under that user's own RLS. The rows of a table
   that are alike for its policies (same values in the columns the policies name) count as one, and answers are
   kept until a table the policies read changes (live_visibility.py): a 15-row insert into one list costs one
   check per connected user the first time, and none while the list's audience cannot have changed. The checks
   themselves run in `sync.live_audience`, which sets each user's claims in turn and runs a prepared lookup
   (one round trip for up to `CHECK_CHUNK` users, at most `CHECK_CONNECTIONS` statements at once).

Users are grouped by their `user_key` (the token's `sub`, else its role), so several devices of one user cost one
check. The hub reads changes from the log, not from NOTIFY payloads: a NOTIFY lost while the listener reconnects
is caught up from the last seq it handled. A client that reconnects with the position it last saw gets the same
check for what it missed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tuskbase import observability, tokens
from tuskbase.caller import Caller, service_transaction
from tuskbase.config import Settings
from tuskbase.sync import catalog
from tuskbase.sync.live_visibility import VisibilityCache

log = logging.getLogger("tuskbase.sync.live")

# The feed consumer NOTIFYs this channel with the last seq of each persisted batch (sync/feed.py).
try:
    from tuskbase.sync.feed import CHANNEL as FEED_CHANNEL
except ImportError:  # pragma: no cover - the feed ships with the sync engine
    FEED_CHANNEL = "tuskbase_sync"

FEED_POSITION = "select seq, pruned_seq from sync.feed_state"
# Per table of the batch: its sync.tables id, served or not, whether it saw a truncate, how many keys changed, how
# many of them by an update or delete (only those can be held by a client), and the keys inserted or updated (only
# when few enough to look at).
BATCH_SUMMARY = """
select t.id, t.relid::oid, t.served, bool_or(c.op = 'T'), count(distinct c.key),
       count(distinct c.key) filter (where c.op in ('U', 'D')),
       case when count(distinct c.key) filter (where c.op in ('I', 'U')) <= $3
            then coalesce(jsonb_agg(distinct c.key) filter (where c.op in ('I', 'U')), '[]') end
from sync.changes c join sync.tables t on t.id = c.tbl
where c.seq > $1 and c.seq <= $2
group by t.id, t.relid, t.served
"""
# Users (among those given) with a client that holds one of the batch's updated or deleted rows (a key only
# inserted is new: nobody holds it). One scan of sync.client_rows' primary key with arrays of client ids and keys
# (Postgres walks the array combinations in one index search instead of one probe per client and key, measured
# 2-3x faster than LATERAL probes for 2,000 clients x 15 keys; nothing is hashed, so the view record is never read
# whole).
HOLDERS = """
with k as materialized (
  select tbl, array_agg(distinct key::text) as keys from sync.changes
  where seq > $1 and seq <= $2 and key is not null and op in ('U', 'D')
  group by tbl
), cl as materialized (
  select client_id, user_key from sync.clients where user_key = any($3::text[])
)
select distinct cl.user_key
from k cross join lateral (
  select r.client_id from sync.client_rows r
  where r.client_id = any(array(select client_id from cl)) and r.tbl = k.tbl and r.key = any(k.keys)
    and r.version is not null
) held
join cl using (client_id)
"""
AUDIENCE = "select sync.live_audience($1, $2::text[], $3::oid[]::regclass[], $4::jsonb[])"


# Users checked per statement; more are split over pool connections, evaluated side by side, on at most
# CHECK_CONNECTIONS of them at once (the pool also serves requests; Postgres uses one core per statement).
CHECK_CHUNK = 250
CHECK_CONNECTIONS = 2
# What a (client view record x changed key) probe costs against one RLS check of a user, for the bound of
# `sync_live_check_max` (measured here: ~0.7 us a probe in HOLDERS, ~20 us a check in sync.live_audience).
PROBES_PER_CHECK = 10


class LimitReached(Exception):
    """Too many live connections, in total or for this user."""


class NotReady(Exception):
    """The hub is not listening yet (the database is unreachable or not migrated)."""


class Positions:
    """Feed positions as clients see them: sealed, so that a poke tells when to pull and where to catch up from
    without telling how many changes the whole database saw (the seq counts every synced write, the user's or
    not). A position is one AES block, the seq behind a fixed tag, under a key derived from the JWT secret that
    every API process shares: any replica opens what another sealed, a client cannot forge or shift one, and
    two positions say nothing of the distance between them."""

    TAG = b"tbpos\x00\x00\x01"

    def __init__(self, secret: str) -> None:
        key = hmac.new(secret.encode(), b"tuskbase live position", hashlib.sha256).digest()[:16]
        # One block, never two under one call: ECB is the bare block cipher, a keyed permutation of 16 bytes.
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())

    def seal(self, seq: int) -> str:
        encryptor = self._cipher.encryptor()
        block = encryptor.update(self.TAG + seq.to_bytes(8, "big")) + encryptor.finalize()
        return base64.urlsafe_b64encode(block).rstrip(b"=").decode()

    def open(self, position: str) -> int:
        """The seq behind a position this server's key sealed; ValueError for anything else."""
        try:
            if len(position) != 22 or not position.isascii():
                raise ValueError
            block = base64.urlsafe_b64decode(position + "==")
            if len(block) != 16:  # characters outside the alphabet are skipped by the decoder
                raise ValueError
        except (ValueError, binascii.Error):
            raise ValueError("seq must be a position the live channel sent") from None
        decryptor = self._cipher.decryptor()
        plain = decryptor.update(block) + decryptor.finalize()
        if not hmac.compare_digest(plain[:8], self.TAG):
            raise ValueError("seq must be a position the live channel sent")
        return int.from_bytes(plain[8:], "big")


@dataclass(eq=False)
class Subscriber:
    """One connected client. The hub sets `seq` and the event; the connection's task sends the poke."""

    key: str
    role: str
    claims_json: str
    expires_at: float
    seq: int = 0  # feed position up to which relevance was evaluated for this client
    poked: int = 0  # last seq announced to the client
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pokes: int = 0

    def poke(self, seq: int) -> None:
        if seq > self.poked:
            self.poked = seq
            self.pokes += 1
            self.wake.set()


@dataclass(frozen=True)
class Batch:
    """What a range of the change log touched, as far as pokes are concerned."""

    everyone: bool  # a truncate, a change to a policy input that is not served, or too many keys to look at
    changed_tables: set[int]  # sync.tables ids of every table changed, whatever the change
    tables: list[int]  # sync.tables ids of the served tables with inserted or updated keys to check under RLS
    relids: list[int]  # their relids
    keys: list[str]  # per table: JSON array of key objects
    held: int = 0  # keys updated or deleted (what the client view records are probed for)


@dataclass(frozen=True)
class Group:
    """Changed rows of one table that are alike for its policies (live_visibility.py): one of them is checked."""

    table_id: int
    relid: int
    digest: str
    keys: str  # JSON array of the key objects checked
    cached: bool  # answers may be kept


class LiveHub:
    """The subscribers of one API process and the listener that pokes them."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool,
                 connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self.settings = settings
        self.pool = pool
        self.connect = connect
        self.users: dict[str, set[Subscriber]] = {}
        self.count = 0
        self.seq = 0  # last seq whose batch was handled
        self.target = 0  # last seq the feed announced
        self._conn: asyncpg.Connection | None = None
        self._worker: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._catchups: set[asyncio.Task[None]] = set()
        self._closing = False
        self._last_batch = 0.0  # loop time the last batch started
        self.started = False
        self.batches = 0
        self.pokes = 0
        self.database_key = settings.database_url or str(settings.db_port)  # as the pull's catalog cache
        self.visibility = VisibilityCache(settings.sync_live_visibility_cache_seconds)
        self._checking = asyncio.Semaphore(CHECK_CONNECTIONS)
        self.positions = Positions(tokens.jwt_secret(settings))

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening in the background (a database not yet migrated only delays the channel)."""
        self._keeper = asyncio.get_running_loop().create_task(self._keep_listening())

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def ready(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def close(self) -> None:
        self._closing = True
        for task in (self._keeper, self._worker, *self._catchups):
            if task is not None:
                task.cancel()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None
        for subscribers in self.users.values():
            for subscriber in subscribers:
                subscriber.wake.set()

    async def _listen(self) -> None:
        conn = await self.connect()
        try:
            await conn.add_listener(FEED_CHANNEL, self._on_notify)
            # Read the position after LISTEN: a batch persisted in between is not missed.
            seq = (await self.position())[0]
        except BaseException:
            await conn.close()
            raise
        if not self.started:
            self.seq = self.target = seq  # clients that connect from now on start here
            self.started = True
        self._conn = conn
        self._announce(seq)

    async def _keep_listening(self) -> None:
        """(Re)connect the listener whenever it is down; the change log covers what was missed meanwhile."""
        failures = 0
        while not self._closing:
            if self._conn is None or self._conn.is_closed():
                try:
                    await self._listen()
                    if failures:
                        log.info("live channel listening again")
                    failures = 0
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                    failures += 1
                    if failures in (1, 10) or failures % 100 == 0:
                        log.warning("live channel cannot listen yet: %s", error)
            await asyncio.sleep(0.5 if failures else 1.0)

    async def position(self) -> tuple[int, int]:
        """(last seq persisted by the feed, seq up to which the change log was pruned)."""
        async with service_transaction(self.pool, readonly=True) as conn:
            seq, pruned = await conn.fetchrow(FEED_POSITION)
        return int(seq), int(pruned)

    # -- subscribers -----------------------------------------------------------------------------------

    def subscribe(self, caller: Caller, seq: int | None) -> Subscriber:
        """Register a connection; `seq` is the feed position the client last saw (None: the current one)."""
        if not self.started:
            raise NotReady("the live channel is starting; retry in a moment")
        key = caller.user_key
        current = self.users.get(key, set())
        if self.count >= self.settings.sync_live_max_connections:
            raise LimitReached("this server holds its maximum of live connections")
        if len(current) >= self.settings.sync_live_max_per_user:
            raise LimitReached("this user holds its maximum of live connections")
        start = self.seq if seq is None else max(0, min(seq, self.seq))
        subscriber = Subscriber(key, caller.role, caller.claims_json, caller.expires_at, seq=start, poked=start)
        self.users.setdefault(key, set()).add(subscriber)
        self.count += 1
        observability.LIVE_CONNECTIONS.set(self.count)
        observability.LIVE_USERS.set(len(self.users))
        if subscriber.seq < self.seq:
            self._catch_up(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscribers = self.users.get(subscriber.key)
        if subscribers is None or subscriber not in subscribers:
            return
        subscribers.discard(subscriber)
        self.count -= 1
        if not subscribers:
            del self.users[subscriber.key]
        observability.LIVE_CONNECTIONS.set(self.count)
        observability.LIVE_USERS.set(len(self.users))

    def refresh(self, subscriber: Subscriber, caller: Caller) -> None:
        """A new token for the same user (a refreshed session): extends the connection's life."""
        if caller.user_key != subscriber.key or caller.role != subscriber.role:
            raise PermissionError("the new token names another user")
        if caller.claims_json != subscriber.claims_json:
            self.visibility.forget_user(subscriber.key)  # new claims may see other rows
        subscriber.claims_json = caller.claims_json
        subscriber.expires_at = caller.expires_at

    # -- batches ---------------------------------------------------------------------------------------

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            seq = int(payload)
        except ValueError:
            log.warning("unexpected payload on %s: %r", FEED_CHANNEL, payload[:64])
            return
        self._announce(seq)

    def _announce(self, seq: int) -> None:
        if seq > self.target:
            self.target = seq
        if self.target > self.seq and (self._worker is None or self._worker.done()):
            self._worker = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Handle batches until caught up with the feed; NOTIFYs that arrive meanwhile are coalesced, and batches
        start at least `sync_live_batch_interval_ms` apart: under a stream of writes the hub's work per second is
        bounded (each batch costs a few statements and a pass over the subscribers, whatever it holds)."""
        loop = asyncio.get_running_loop()
        interval = self.settings.sync_live_batch_interval_ms / 1000
        while self.target > self.seq and not self._closing:
            wait = self._last_batch + interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_batch = loop.time()
            seq_from, seq_to = self.seq, self.target
            subscribers = [s for group in self.users.values() for s in group if s.seq == seq_from]
            try:
                poked = await self.audience(seq_from, seq_to, subscribers)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                # A poke is only a hint to pull: when the check fails, everyone is poked rather than nobody.
                log.warning("live channel could not evaluate changes %s..%s, poking everyone: %s",
                            seq_from, seq_to, error)
                poked = set(subscribers)
            self.seq = seq_to
            self.batches += 1
            for subscriber in subscribers:
                subscriber.seq = max(subscriber.seq, seq_to)
                if subscriber in poked:
                    subscriber.poke(seq_to)
                    self.pokes += 1
            # Clients that connected while this batch was evaluated were not part of it.
            for group in list(self.users.values()):
                for subscriber in group:
                    if subscriber.seq < self.seq:
                        self._catch_up(subscriber)

    def _catch_up(self, subscriber: Subscriber) -> None:
        task = asyncio.get_running_loop().create_task(self._catch_up_one(subscriber))
        self._catchups.add(task)
        task.add_done_callback(self._catchups.discard)

    async def _catch_up_one(self, subscriber: Subscriber) -> None:
        seq_from, seq_to = subscriber.seq, self.seq
        if seq_to <= seq_from:
            return
        subscriber.seq = seq_to  # claimed now, so that the batch loop does not start a second catch-up
        try:
            poked = await self.audience(seq_from, seq_to, [subscriber])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("live channel catch-up failed, poking to be safe: %s", error)
            poked = {subscriber}
        if subscriber in poked:
            subscriber.poke(seq_to)
            self.pokes += 1

    async def audience(self, seq_from: int, seq_to: int, subscribers: list[Subscriber]) -> set[Subscriber]:
        """The subscribers among `subscribers` that may see one of the changes (seq_from, seq_to]."""
        if not subscribers:
            # Nobody to poke, so the batch is not read: what it changed is unknown, the answers kept may be stale.
            self.visibility.clear()
            return set()
        by_user: dict[str, list[Subscriber]] = {}
        for subscriber in subscribers:
            by_user.setdefault(subscriber.key, []).append(subscriber)
        try:
            seeing = await self._seeing(seq_from, seq_to, by_user)
        except BaseException:
            self.visibility.clear()  # which changes were looked at is unknown: no answer kept may be trusted
            raise
        if seeing is None:
            return set(subscribers)
        return {s for key in seeing for s in by_user[key]}

    async def _seeing(self, seq_from: int, seq_to: int, by_user: dict[str, list[Subscriber]]) -> set[str] | None:
        """The users (keys of `by_user`) poked for the batch; None: all of them."""
        async with service_transaction(self.pool, readonly=True) as conn:
            _, pruned = await conn.fetchrow(FEED_POSITION)
            if seq_from < pruned:
                self.visibility.clear()
                return None
            batch = await self._summary(conn, seq_from, seq_to)
            known = await catalog.cached(conn, self.database_key)
            # Before anything is looked up: answers that depended on a table of this batch are gone.
            self.visibility.changed(known, batch.changed_tables)
            generations = {t: self.visibility.generation(t) for t in batch.tables}
            if batch.everyone or \
                    batch.held * len(by_user) > self.settings.sync_live_check_max * PROBES_PER_CHECK:
                return None
            holders: set[str] = set()
            if batch.held:
                holders = {row[0] for row in await conn.fetch(HOLDERS, seq_from, seq_to, list(by_user))}
            groups = await self._groups(conn, known, batch)
        seeing = set(holders)
        by_role: dict[str, list[str]] = {}
        for key in by_user.keys() - holders:
            role = by_user[key][0].role
            if role == "service_role":
                seeing.add(key)  # sees every row
            else:
                by_role.setdefault(role, []).append(key)
        # What the cache answers; what it does not is asked of Postgres, one check per (group, user).
        asks: list[tuple[Group, str, list[str]]] = []
        for group in groups:
            for role, keys in by_role.items():
                candidates = [k for k in keys if k not in seeing]
                if group.cached:
                    known_seeing, unknown = self.visibility.lookup(group.table_id, group.digest, candidates)
                    seeing |= known_seeing
                else:
                    unknown = candidates
                if unknown:
                    asks.append((group, role, unknown))
        if sum(len(keys) for _, _, keys in asks) > self.settings.sync_live_check_max:
            return None  # a mass change: checking every pair would cost more than the pulls it saves
        chunks = [(group, role, keys[i:i + CHECK_CHUNK]) for group, role, keys in asks
                  for i in range(0, len(keys), CHECK_CHUNK)]
        results = await asyncio.gather(*(self._check(group, role, keys, by_user) for group, role, keys in chunks))
        for (group, _role, keys), found in zip(chunks, results, strict=True):
            seeing.update(found)
            if group.cached:
                self.visibility.store(group.table_id, generations[group.table_id], group.digest, keys, set(found))
        return seeing

    async def _groups(self, conn: asyncpg.Connection, known: catalog.Catalog, batch: Batch) -> list[Group]:
        """The rows to check, one per projection group of each table (live_visibility.py)."""
        groups: list[Group] = []
        for table_id, relid, keys in zip(batch.tables, batch.relids, batch.keys, strict=True):
            table = known.tables.get(table_id)
            if table is None or table.relid != relid:  # enabled after the catalog was read: check every key
                groups.append(Group(table_id, relid, "", keys, cached=False))
                continue
            cached = table_id in self.visibility.cacheable
            for digest, key in await conn.fetch(self.visibility.representatives(table), keys):
                groups.append(Group(table_id, relid, digest, f"[{key}]", cached=cached))
        return groups

    async def _check(self, group: Group, role: str, keys: list[str], by_user: dict[str, list[Subscriber]]
                     ) -> list[str]:
        claims = [by_user[key][0].claims_json for key in keys]
        async with self._checking, self.pool.acquire() as conn, conn.transaction(readonly=True):
            positions = await conn.fetchval(AUDIENCE, role, claims, [group.relid], [group.keys])
        return [keys[i - 1] for i in positions or ()]

    async def _summary(self, conn: asyncpg.Connection, seq_from: int, seq_to: int) -> Batch:
        changed: set[int] = set()
        everyone = False
        tables: list[int] = []
        relids: list[int] = []
        keys: list[str] = []
        held = 0
        for table_id, relid, served, truncated, _changed, updated, upserted in await conn.fetch(
                BATCH_SUMMARY, seq_from, seq_to, self.settings.sync_live_check_max):
            changed.add(table_id)
            held += updated
            if truncated or not served or upserted is None:
                everyone = True
            elif upserted != "[]":
                tables.append(table_id)
                relids.append(relid)
                keys.append(upserted)
        return Batch(everyone, changed, tables, relids, keys, held)


async def start_position(pool: asyncpg.Pool, positions: Positions, caller: Caller, params: Any
                         ) -> int | None:
    """The feed position a reconnecting client last saw, from whichever it holds: `seq` (the last poke's),
    `cursor` with `client_id` (its last /sync/v1/pull cursor) or `last_pulled_at` (its WatermelonDB timestamp).
    None: start from the current position. Raises ValueError on a bad value. A position is not secret: what
    it leads to is checked under the user's own RLS."""
    from tuskbase.sync import watermelon
    from tuskbase.sync.errors import SyncError
    from tuskbase.sync.wire import Cursor

    raw_seq = params.get("seq")
    if raw_seq is not None:
        return positions.open(raw_seq)
    try:
        if params.get("cursor"):
            return Cursor.decode(params.get("cursor"), params.get("client_id") or "").seq
        if params.get("last_pulled_at") not in (None, "", "null"):
            last = watermelon.parse_pull({"last_pulled_at": params.get("last_pulled_at")})[0]
            if last is None:
                return None
            client_id, cursor = await watermelon.resolve(pool, caller, last)
            return Cursor.decode(cursor, client_id).seq if cursor else None
    except SyncError as error:
        raise ValueError(error.message) from None
    return None

