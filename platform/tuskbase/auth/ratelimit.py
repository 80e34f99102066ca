"""Fixed-window rate limits of the credential endpoints, counted in Postgres so every replica shares them.

Each credential request counts once against its client IP and once against its identifier (email or token
hash), per endpoint; over either limit the answer is 429 with `Retry-After` (seconds to the window's end).
The counters commit in their own transaction, before the credential check, so a failed guess still counts.
"""

from __future__ import annotations

import asyncpg

from tuskbase.auth import errors, metrics, store
from tuskbase.config import Settings

HIT = """
insert into auth.rate_limits as r (bucket, key, window_start, hits)
select b, k, now(), 1 from unnest($1::text[], $2::text[]) as x(b, k)
on conflict (bucket, key) do update set
  window_start = case when r.window_start <= now() - make_interval(secs => $3) then now() else r.window_start end,
  hits = case when r.window_start <= now() - make_interval(secs => $3) then 1 else r.hits + 1 end
returning bucket, hits,
  greatest(1, ceil(extract(epoch from (window_start + make_interval(secs => $3) - now()))))::int as retry_after
"""


def _keys(endpoint: str, ip: str | None, identifier: str | None) -> tuple[list[str], list[str]]:
    buckets, keys = [], []
    if ip:
        buckets.append("ip:" + endpoint)
        keys.append(ip)
    if identifier:
        buckets.append("id:" + endpoint)
        keys.append(identifier.lower())
    return buckets, keys


def _check(settings: Settings, rows: list[asyncpg.Record]) -> None:
    for row in rows:
        limit = (settings.auth_rate_limit_per_ip if row["bucket"].startswith("ip:")
                 else settings.auth_rate_limit_per_identifier)
        if row["hits"] > limit:
            metrics.count("rate_limited")
            raise errors.AuthError(429, errors.OVER_REQUEST_RATE_LIMIT, "Request rate limit reached",
                                   headers={"Retry-After": str(row["retry_after"])})


async def hit(pool: asyncpg.Pool, settings: Settings, endpoint: str, ip: str | None,
              identifier: str | None) -> None:
    """Count a request in its own transaction (it stays counted whatever the request's outcome)."""
    buckets, keys = _keys(endpoint, ip, identifier)
    if buckets:
        async with store.transaction(pool) as conn:
            rows = await conn.fetch(HIT, buckets, keys, settings.auth_rate_limit_window)
        _check(settings, rows)


async def hit_in(conn: asyncpg.Connection, settings: Settings, endpoint: str, ip: str | None,
                 identifier: str | None) -> None:
    """Count a request inside the caller's transaction, for flows that commit their failures too (refresh)."""
    buckets, keys = _keys(endpoint, ip, identifier)
    if buckets:
        _check(settings, await conn.fetch(HIT, buckets, keys, settings.auth_rate_limit_window))
