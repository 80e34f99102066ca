"""The request transaction: role and claims reach RLS through one set_config, and vanish at commit."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from tuskbase import caller, db
from tuskbase.caller import Caller

ALICE, BOB = uuid.uuid4(), uuid.uuid4()


def claims(user: uuid.UUID) -> dict:
    return {"sub": str(user), "role": "authenticated"}


@pytest.fixture
def seeded(admin):
    alice_list = admin.execute(
        "insert into lists (owner_id, title) values (%s, 'alice') returning id", (ALICE,)
    ).fetchone()[0]
    admin.execute("insert into todos (list_id, title) values (%s, 'secret')", (alice_list,))
    return alice_list


def run(coro):
    return asyncio.run(coro)


async def with_pool(settings, work):
    pool = await db.create_pool(settings)
    try:
        return await work(pool)
    finally:
        await pool.close()


def test_rls_sees_only_the_callers_rows(settings, seeded):
    async def titles(pool, user):
        async with caller.transaction(pool, Caller.of(claims(user)), readonly=True) as conn:
            return [r["title"] for r in await conn.fetch("select title from todos")]

    async def work(pool):
        return await titles(pool, ALICE), await titles(pool, BOB)

    alice_sees, bob_sees = run(with_pool(settings, work))
    assert alice_sees == ["secret"]
    assert bob_sees == []


def test_identity_is_transaction_local(settings, seeded):
    async def work(pool):
        async with caller.transaction(pool, Caller.of(claims(ALICE))) as conn:
            inside = await conn.fetchrow("select current_user::text as role, auth.uid() as uid")
        async with pool.acquire() as conn:
            after = await conn.fetchrow("select current_user::text as role, auth.uid() as uid")
        return inside, after

    inside, after = run(with_pool(settings, work))
    assert (inside["role"], inside["uid"]) == ("authenticated", ALICE)
    assert (after["role"], after["uid"]) == ("authenticator", None)


def test_cross_user_write_is_refused(settings, seeded):
    async def work(pool):
        async with caller.transaction(pool, Caller.of(claims(BOB))) as conn:
            return await conn.execute("update todos set title = 'hacked'")

    assert run(with_pool(settings, work)) == "UPDATE 0"


def test_readonly_transaction_refuses_writes(settings, seeded):
    async def work(pool):
        async with caller.transaction(pool, Caller.of(claims(ALICE)), readonly=True) as conn:
            await conn.execute("update todos set title = 'x'")

    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        run(with_pool(settings, work))


def test_service_role_bypasses_rls_and_unknown_roles_are_refused(settings, seeded):
    async def work(pool):
        async with caller.transaction(pool, Caller.of({"role": "service_role"}), readonly=True) as conn:
            count = await conn.fetchval("select count(*) from todos")
        with pytest.raises(PermissionError):
            async with caller.transaction(pool, Caller.of({"role": "postgres"})):
                pass
        return count

    assert run(with_pool(settings, work)) == 1


def test_anon_sees_nothing(settings, seeded):
    async def work(pool):
        async with caller.transaction(pool, Caller.of({"role": "anon"}), readonly=True) as conn:
            await conn.fetch("select * from todos")

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        run(with_pool(settings, work))
