"""Platform actors. Service actors (push, media, scheduler) live in their own modules beside this one."""

from __future__ import annotations

import dramatiq

from tuskbase_workers.database import pool

RECORD_HEARTBEAT = """
insert into tuskbase.heartbeats (name, beat_at) values (%s, now())
on conflict (name) do update set beat_at = excluded.beat_at
"""


@dramatiq.actor(queue_name="platform", max_retries=3)
def heartbeat(name: str) -> None:
    """Mark `name` as alive: lets operators and tests check that the broker reaches a worker."""
    with pool().connection() as conn:
        conn.execute(RECORD_HEARTBEAT, (name,))
