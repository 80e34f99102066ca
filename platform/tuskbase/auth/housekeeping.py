"""Periodic cleanup of the auth tables (auth.cleanup() in sql/0011), from a background task of the API.

Every replica runs the task; a transaction-level advisory lock lets one of them do the work per round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from tuskbase.auth import store

log = logging.getLogger("tuskbase.auth.housekeeping")
INTERVAL = 600.0
LOCK_KEY = 0x61757468  # "auth"
CLEANUP = """
select auth.cleanup($1, $2) where pg_try_advisory_xact_lock($3)
"""


async def run_once(app: Any) -> None:
    settings = app.state.settings
    async with store.transaction(app.state.pool) as conn:
        await conn.execute(CLEANUP, timedelta(seconds=settings.auth_rate_limit_window),
                           timedelta(seconds=settings.jwt_exp), LOCK_KEY)


async def _loop(app: Any) -> None:
    while True:
        await asyncio.sleep(INTERVAL)
        try:
            await run_once(app)
        except Exception:  # a failed round is retried at the next one
            log.exception("auth cleanup failed")


async def start(app: Any) -> None:
    app.state.auth_housekeeping = asyncio.get_running_loop().create_task(_loop(app))


async def stop(app: Any) -> None:
    task = getattr(app.state, "auth_housekeeping", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
