"""Feed metrics on the API's /metrics: slot lag and feed throughput, read from the database every few seconds.

The feed consumer is its own process (and may run on another host); the API reads what it persisted
(`sync.feed_state`) and the slot's position, so one scrape of any API replica shows the feed's health.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from prometheus_client import Gauge

from tuskbase.caller import become_service
from tuskbase.sync.feed import slot_name

log = logging.getLogger("tuskbase.sync.metrics")
INTERVAL = 5.0

# With several server workers (multiprocess metrics), a gauge shows the value its live workers set last.
LATEST = "livemostrecent"
SLOT_LAG = Gauge("tuskbase_sync_slot_lag_bytes", "WAL bytes the sync slot has not yet confirmed (feed backlog)",
                 multiprocess_mode=LATEST)
PERSISTED = Gauge("tuskbase_sync_feed_changes_persisted", "Changes the feed has written to sync.changes (ever)",
                  multiprocess_mode=LATEST)
THROUGHPUT = Gauge("tuskbase_sync_feed_changes_per_second", "Changes persisted per second over the last interval",
                   multiprocess_mode=LATEST)
LAST_SEQ = Gauge("tuskbase_sync_feed_seq", "Last seq assigned by the feed",
                 multiprocess_mode=LATEST)
IDLE = Gauge("tuskbase_sync_feed_seconds_since_batch", "Seconds since the feed last persisted a batch",
             multiprocess_mode=LATEST)

READ = """
select f.seq, f.changes_total, extract(epoch from now() - f.updated_at)::float8,
       (select (pg_current_wal_lsn() - s.confirmed_flush_lsn)::float8 from pg_replication_slots s
        where s.slot_name = $1 and s.database = current_database())
from sync.feed_state f
"""


async def sample(conn: Any, slot: str) -> tuple[int, int, float, float | None]:
    async with conn.transaction(readonly=True):
        await become_service(conn)
        return tuple(await conn.fetchrow(READ, slot))


async def _poll(app: Any) -> None:
    settings = app.state.settings
    previous: tuple[float, int] | None = None
    while True:
        try:
            async with app.state.pool.acquire() as conn:
                slot = slot_name(settings, await conn.fetchval("select current_database()"))
                seq, total, idle, lag = await sample(conn, slot)
            now = time.monotonic()
            LAST_SEQ.set(seq)
            PERSISTED.set(total)
            IDLE.set(idle)
            if lag is not None:
                SLOT_LAG.set(lag)
            if previous is not None and now > previous[0]:
                THROUGHPUT.set(max(0, total - previous[1]) / (now - previous[0]))
            previous = (now, total)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # metrics must never take the API down
            log.debug("sync metrics: %s", error)
        await asyncio.sleep(INTERVAL)


async def start(app: Any) -> None:
    app.state.sync_metrics = asyncio.get_running_loop().create_task(_poll(app))


async def stop(app: Any) -> None:
    task = getattr(app.state, "sync_metrics", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
