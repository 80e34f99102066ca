"""The auth service's database access: its own role, its own transactions.

Auth statements run as `tuskbase_auth` (granted to the API's login role), never as a request role: the
auth tables are invisible to anon, authenticated and service_role. SQL lives as named constants beside the
flow that runs it; values are always bound.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

# BEGIN and the role switch in one round trip (a simple-query string may hold several statements).
BEGIN_AS_AUTH_ROLE = (
    "begin; select set_config('role', 'tuskbase_auth', true), set_config('request.jwt.claims', '', true)"
)


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn:
        await conn.execute(BEGIN_AS_AUTH_ROLE)
        try:
            yield conn
        except BaseException:
            # A cancelled request may leave an operation in flight; the pool's reset rolls back then.
            with contextlib.suppress(Exception):
                if not conn.is_closed():
                    await conn.execute("rollback")
            raise
        await conn.execute("commit")


def load_json(raw: str | None) -> Any:
    return json.loads(raw) if raw else {}


def dump_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)
