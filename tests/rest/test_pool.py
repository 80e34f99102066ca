"""The REST connection pool: bounded, hands connections to waiters, never reuses a connection in doubt."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tuskbase import db
from tuskbase.rest.pool import FastPool


def run(coroutine):
    return asyncio.run(coroutine)


def test_bounded_waiters_errors_and_cancellation(settings):
    url = db.authenticator_url(settings)

    async def scenario():
        opened = []

        async def connect():
            conn = await asyncpg.connect(url)
            opened.append(conn)
            return conn

        pool = FastPool(connect, 2)
        claims = {"role": "authenticated", "sub": "00000000-0000-4000-8000-000000000001"}

        async def who():
            async with db.request_transaction(pool, claims, readonly=True) as conn:
                await asyncio.sleep(0.05)
                return await conn.fetchval("select current_user || ' ' || auth.uid()")

        answers = await asyncio.gather(*[who() for _ in range(6)])
        assert set(answers) == {"authenticated 00000000-0000-4000-8000-000000000001"}
        assert len(opened) == 2  # six requests, never more than two connections

        # A database error rolls back and keeps the connection; the role does not leak out of the transaction.
        with pytest.raises(asyncpg.PostgresError):
            async with db.request_transaction(pool, claims) as conn:
                await conn.execute("select 1/0")
        async with pool.acquire() as conn:
            assert await conn.fetchval("select current_user") == "authenticator"
        assert len(opened) == 2

        # A request cancelled mid-query (client gone) closes its connection; the pool opens a new one later.
        async def slow():
            async with db.request_transaction(pool, claims, readonly=True) as conn:
                await conn.execute("select pg_sleep(5)")

        task = asyncio.get_running_loop().create_task(slow())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sum(not c.is_closed() for c in opened) <= 2
        assert await who() == "authenticated 00000000-0000-4000-8000-000000000001"
        await pool.close()
        assert all(c.is_closed() for c in opened)

    run(scenario())
