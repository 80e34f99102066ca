"""Fixtures of the sync tests: a feed consumer driven step by step, users with lists, a pull/push client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tuskbase.sync.feed import Feed


@pytest.fixture
def feed(database, settings) -> Iterator[Feed]:
    """The feed consumer of the test database, leader, its slot created; the test calls `feed.step()`."""
    consumer = Feed(database, settings)
    consumer.connect()
    assert consumer.try_lead()
    try:
        yield consumer
    finally:
        consumer.close()


def drain(consumer: Feed) -> int:
    """Run batches until the slot has nothing new; returns the changes persisted."""
    total = 0
    consumer.flush_wal()  # the test server runs with synchronous_commit=off
    while (batch := consumer.step()) is not None:
        total += batch.changes
    return total


def changes(admin: psycopg.Connection) -> list[tuple]:
    return admin.execute(
        "select c.seq, t.relid::text, c.op, c.key, c.row, c.cols from sync.changes c "
        "join sync.tables t on t.id = c.tbl order by c.seq"
    ).fetchall()


def new_user() -> str:
    return str(uuid.uuid4())
