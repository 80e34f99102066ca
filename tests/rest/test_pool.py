"""The REST connection pool: bounded, hands connections to waiters, never reuses a connection in doubt."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tuskbase import caller, db
from tuskbase.caller import Caller
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
            async with caller.transaction(pool, Caller.of(claims), readonly=True) as conn:
                await asyncio.sleep(0.05)
                return await conn.fetchval("select current_user || ' ' || auth.uid()")

        answers = await asyncio.gather(*[who() for _ in range(6)])
        assert set(answers) == {"authenticated 00000000-0000-4000-8000-000000000001"}
        assert len(opened) == 2  # six requests, never more than two connections

        # A database error rolls back and keeps the connection; the role does not leak out of the transaction.
        with pytest.raises(asyncpg.PostgresError):
            async with caller.transaction(pool, Caller.of(claims)) as conn:
                await conn.execute("select 1/0")
        async with pool.acquire() as conn:
            assert await conn.fetchval("select current_user") == "authenticator"
        assert len(opened) == 2

        # A request cancelled mid-query (client gone) closes its connection; the pool opens a new one later.
        async def slow():
            async with caller.transaction(pool, Caller.of(claims), readonly=True) as conn:
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


ALICE = "00000000-0000-4000-8000-0000000000a1"
BOB = "00000000-0000-4000-8000-0000000000b0"


def test_session_identity_is_replaced_or_cleared_on_every_hand_out(settings):
    """One connection serves alice, bob, a write and a bare acquire in turn: each sees only its own identity."""
    url = db.authenticator_url(settings)

    async def scenario():
        pool = FastPool(lambda: asyncpg.connect(url), 1)
        alice, bob = {"role": "authenticated", "sub": ALICE}, {"role": "authenticated", "sub": BOB}
        identity = "select current_user || ' ' || coalesce(auth.uid()::text, '-') || ' ' " \
                   "|| current_setting('transaction_read_only')"
        async with caller.session(pool, Caller.of(alice), readonly=True) as conn:
            assert await conn.fetchval(identity) == f"authenticated {ALICE} on"
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await conn.execute("create temporary table scratch (x int)")
        async with caller.session(pool, Caller.of(bob), readonly=False) as conn:
            assert await conn.fetchval(identity) == f"authenticated {BOB} off"
            async with conn.transaction():  # an explicit transaction inherits the session's mode
                await conn.execute("create temporary table scratch (x int)")
        async with caller.session(pool, Caller.of({"role": "anon"}), readonly=True) as conn:
            assert await conn.fetchval(identity) == "anon - on"
        # The bare acquire (persisted-query lookups) gets the login role back, with no claims and read-write.
        async with pool.acquire() as conn:
            assert await conn.fetchval("select current_user || ' ' || coalesce(nullif("
                                       "current_setting('request.jwt.claims', true), ''), '-') || ' ' "
                                       "|| current_setting('transaction_read_only')") == "authenticator - off"
        # So does the transaction-local path that other services use on their pools.
        async with caller.transaction(pool, Caller.of(alice)) as conn:
            await conn.execute("create temporary table scratch2 (x int)")
        # A role outside the request roles never reaches the database.
        with pytest.raises(PermissionError):
            async with caller.session(pool, Caller.of({"role": "postgres"}), readonly=True):
                pass
        await pool.close()

    run(scenario())


def test_a_failed_identity_statement_keeps_no_half_identity(settings):
    url = db.authenticator_url(settings)

    async def scenario():
        pool = FastPool(lambda: asyncpg.connect(url), 1)
        async with caller.session(pool, Caller.of({"role": "authenticated", "sub": ALICE}), readonly=True):
            pass
        # The identity statement fails as a whole (an unknown role) and hands nothing out; the connection
        # still carries alice's identity, which the next bare acquire clears.
        with pytest.raises(asyncpg.PostgresError):
            async with pool.acquire_as("no_such_role", '{"sub": "x"}', readonly=False):
                raise AssertionError("not reached")
        async with pool.acquire() as conn:
            assert await conn.fetchval("select current_user || ' ' || coalesce(nullif("
                                       "current_setting('request.jwt.claims', true), ''), '-')") == "authenticator -"
        await pool.close()

    run(scenario())
