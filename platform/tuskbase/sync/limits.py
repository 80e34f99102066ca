"""Load limits of the sync service: no user, and no number of pulls, can starve the rest of the API.

    limits = SyncLimits.from_settings(settings)          # one per API process (app.state.sync_limits)
    result = await limits.run(user_key, receive, lambda: pull(...))

`run` admits the work, or refuses it with a coded `SyncError` that carries `Retry-After`:

- a user (token `sub`, else the role) already running `TUSKBASE_SYNC_PER_USER_MAX` sync requests in this process
  (running or queued) -> 429 SYNC150, at once;
- no process slot free within `TUSKBASE_SYNC_QUEUE_MS` -> 503 SYNC151. There are as many slots as the sync pool
  has connections (`TUSKBASE_SYNC_POOL_MAX`) and each sync request holds at most one connection at a time, so an
  admitted request never waits for a connection, and a queued one waits here, where the wait is bounded;
- a statement that ran past `TUSKBASE_SYNC_STATEMENT_TIMEOUT_MS` (SQLSTATE 57014 on the sync pool's connections,
  whose session default it is) -> 503 SYNC152.

While the work runs, `run` watches the ASGI `receive` channel: when the client goes away (`http.disconnect`), the
work is cancelled and `ClientGone` raised. Cancelling a task that awaits an asyncpg query makes asyncpg send
Postgres a cancel request for it, so no backend keeps scanning for an answer nobody will read; `run` returns only
once the work has unwound (its transaction rolled back, its connection back in the pool).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from tuskbase.config import Settings
from tuskbase.sync.errors import BUSY, TIMED_OUT, USER_BUSY, SyncError

T = TypeVar("T")
# A server that answers `receive()` again and again with an empty request instead of waiting for the disconnect
# would make the watcher spin: after this many such answers it stops watching.
_EMPTY_RECEIVES_MAX = 2


class ClientGone(Exception):
    """The client disconnected before its answer was ready: nothing is sent."""


class SyncLimits:
    def __init__(self, *, per_user: int, slots: int, queue_seconds: float, retry_after: int) -> None:
        self.per_user = per_user
        self.slots = slots
        self.queue_seconds = queue_seconds
        self.retry_after = retry_after
        self.free = asyncio.Semaphore(slots)
        self.by_user: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SyncLimits:
        return cls(per_user=settings.sync_per_user_max, slots=settings.sync_pool_max,
                   queue_seconds=settings.sync_queue_ms / 1000, retry_after=settings.sync_retry_after)

    @asynccontextmanager
    async def admitted(self, user: str | None) -> AsyncIterator[None]:
        """Hold one of the user's slots and one of the process's for the block, or raise SYNC150 / SYNC151.

        A caller without a user (the anon and service keys) has only the process's slots: counted per role,
        one anonymous client holding its slots would turn every other anonymous client away."""
        if user is None:
            await self._take_slot()
            try:
                yield
            finally:
                self.free.release()
            return
        count = self.by_user.get(user, 0)
        if count >= self.per_user:
            raise SyncError(USER_BUSY, f"this user already runs {self.per_user} sync requests; retry shortly",
                            retry_after=self.retry_after)
        self.by_user[user] = count + 1
        try:
            await self._take_slot()
            try:
                yield
            finally:
                self.free.release()
        finally:
            left = self.by_user[user] - 1
            if left:
                self.by_user[user] = left
            else:
                del self.by_user[user]

    async def _take_slot(self) -> None:
        if not self.free.locked():
            await self.free.acquire()  # returns at once
            return
        try:
            # wait_for hands back an acquisition that completed as the timeout fired, so no slot leaks
            await asyncio.wait_for(self.free.acquire(), self.queue_seconds)
        except TimeoutError:
            raise SyncError(BUSY, "every sync connection of this server is busy; retry shortly",
                            retry_after=self.retry_after) from None

    async def run(self, user: str | None, receive: Any, work: Callable[[], Awaitable[T]]) -> T:
        """`work()` admitted under the limits, cancelled if the client disconnects (then `ClientGone`)."""
        task = asyncio.ensure_future(self._admitted_work(user, work))
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            done, _ = await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
            if task not in done:
                task.cancel()
                await asyncio.wait((task,))  # the query is cancelled and rolled back before we go
                raise ClientGone
            return task.result()
        finally:
            watcher.cancel()
            if not task.done():  # the request itself was cancelled (server shutting down)
                task.cancel()

    async def _admitted_work(self, user: str | None, work: Callable[[], Awaitable[T]]) -> T:
        async with self.admitted(user):
            try:
                return await work()
            except asyncpg.QueryCanceledError:
                # statement_timeout (or an operator's pg_cancel_backend): the work was too big for now
                raise SyncError(TIMED_OUT, "a sync statement ran past the time limit; retry shortly",
                                retry_after=self.retry_after) from None


async def _disconnected(receive: Any) -> None:
    """Return when the ASGI server reports that the client went away."""
    empty = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body"):
            empty += 1
            if empty > _EMPTY_RECEIVES_MAX:
                await asyncio.Event().wait()  # this server does not report disconnects while we wait: never
