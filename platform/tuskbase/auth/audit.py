"""The audit trail (auth.audit_log, sql/0014): one row per security-relevant event, in the event's transaction."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from tuskbase.auth.store import dump_json

INSERT = "insert into auth.audit_log (user_id, session_id, action, detail, ip) values ($1, $2, $3, $4::jsonb, $5::inet)"


async def record(conn: asyncpg.Connection, action: str, user_id: uuid.UUID | str | None, *,
                 session_id: uuid.UUID | str | None = None, ip: str | None = None, **detail: Any) -> None:
    await conn.execute(INSERT, _uuid(user_id), _uuid(session_id), action, dump_json(detail), ip)


def _uuid(value: uuid.UUID | str | None) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
