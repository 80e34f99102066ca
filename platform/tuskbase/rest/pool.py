"""A small asyncpg connection pool for the REST hot path.

asyncpg's own `Pool` costs about 100 us of Python per acquire/release pair on this machine (queue, timeout
contexts and a reset query per release): as much as a request's round trips together. REST needs none of it:
the only session state a request leaves is the caller's identity, which the next hand-out replaces or clears
(below), so a connection that ends outside a transaction, without an error of the connection itself, is fit
for reuse. Acquiring is popping a list; a connection in doubt is closed, never reused.

It has the `acquire()` shape of asyncpg's pool, so `caller.transaction` runs on it unchanged.

`acquire_as(role, claims, readonly=...)` sets the caller's identity for the connection's session instead of
one transaction (`caller.set_session_identity`), read-only mode included: a read is then one statement in its own
implicit transaction, two round trips instead of four (BEGIN, set_config, statement, COMMIT), which halves
both the Python and the Postgres work of the hot path. Every connection handed out either gets the caller's
identity or, from the bare `acquire()`, has the last one cleared first: no statement on this pool runs under
an identity it did not ask for. (This is also why the API needs direct or session-pooled connections: a
transaction-mode pooler could run the two statements on different server connections. asyncpg's statement
cache rules those poolers out already.)
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from tuskbase.caller import clear_session_identity, set_session_identity

# After these a connection may be mid-protocol or gone: close it instead of reusing it.
_DOUBTFUL = (asyncio.CancelledError, asyncpg.InterfaceError, ConnectionError, OSError, TimeoutError)


class FastPool:
    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], size: int) -> None:
        self._connect = connect
        self._size = size
        self._count = 0
        self._idle: list[asyncpg.Connection] = []
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection]] = collections.deque()
        self._closed = False
        self._identified: set[int] = set()  # id() of the connections whose session carries a caller's identity

    # The figures asyncpg's pool gives, under its names: /metrics reads both kinds of pool the same way.
    def get_max_size(self) -> int:
        return self._size

    def get_size(self) -> int:
        """Connections open, in use or idle."""
        return self._count

    def get_idle_size(self) -> int:
        return len(self._idle)

    def acquire(self) -> _Acquired:
        """A connection as the login role, with no caller's identity."""
        return _Acquired(self, None)

    def acquire_as(self, role: str, claims_json: str, *, readonly: bool) -> _Acquired:
        """A connection whose session runs as `role` with `claims_json`; each statement is its own transaction,
        read-only when `readonly` (an explicit BEGIN inherits the mode)."""
        return _Acquired(self, (role, claims_json, "on" if readonly else "off"))

    async def _get(self) -> asyncpg.Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._count -= 1  # the server closed it while idle (restart, pg_terminate_backend)
            self._identified.discard(id(conn))
        if self._closed:
            raise asyncpg.InterfaceError("the REST pool is closed")
        if self._count < self._size:
            self._count += 1
            try:
                return await self._connect()
            except BaseException:
                self._count -= 1
                raise
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._put(waiter.result(), None)  # handed over just as we were cancelled: pass it on
            raise

    def _put(self, conn: asyncpg.Connection, error: BaseException | None) -> None:
        if self._closed or conn.is_closed() or conn.is_in_transaction() or isinstance(error, _DOUBTFUL):
            self._identified.discard(id(conn))
            conn.terminate()
            self._count -= 1
            if self._waiters and not self._closed:
                asyncio.get_running_loop().create_task(self._replace())
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    async def _replace(self) -> None:
        """A waiter lost its chance when a connection was closed: open a new one for it."""
        try:
            conn = await self._get()
        except Exception:
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(asyncpg.InterfaceError("could not open a database connection"))
            return
        self._put(conn, None)

    async def close(self) -> None:
        self._closed = True
        self._identified.clear()
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()
        self._count -= len(idle)


class _Acquired:
    __slots__ = ("conn", "identity", "pool")

    def __init__(self, pool: FastPool, identity: tuple[str, str, str] | None) -> None:
        self.pool = pool
        self.identity = identity
        self.conn: Any = None

    async def __aenter__(self) -> asyncpg.Connection:
        pool = self.pool
        self.conn = conn = await pool._get()
        try:
            if self.identity is not None:
                await set_session_identity(conn, *self.identity)
                pool._identified.add(id(conn))
            elif id(conn) in pool._identified:
                await clear_session_identity(conn)
                pool._identified.discard(id(conn))
        except BaseException as error:
            pool._put(conn, error)  # `async with` does not call __aexit__ when __aenter__ raises
            raise
        return conn

    async def __aexit__(self, _kind: Any, error: BaseException | None, _trace: Any) -> None:
        self.pool._put(self.conn, error)
