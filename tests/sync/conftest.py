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


def make_list(admin: psycopg.Connection, owner: str, title: str = "list") -> str:
    return str(admin.execute("insert into public.lists (owner_id, title) values (%s, %s) returning id",
                             (owner, title)).fetchone()[0])


def make_todo(admin: psycopg.Connection, list_id: str, title: str = "todo") -> str:
    return str(admin.execute("insert into public.todos (list_id, title) values (%s, %s) returning id",
                             (list_id, title)).fetchone()[0])


def new_user() -> str:
    return str(uuid.uuid4())


class SyncClient:
    """A device: pulls through /sync/v1/pull (following has_more) and keeps the rows it was sent."""

    def __init__(self, api, user_id: str, client_id: str | None = None) -> None:
        import httpx

        self.api = api
        self.user_id = user_id
        self.client_id = client_id or f"device-{uuid.uuid4().hex[:8]}"
        self.token = api.user_token(user_id)
        self.http = httpx.Client(base_url=api.url, headers=api.headers(self.token), timeout=30)
        self.cursor: str | None = None
        self.rows: dict[str, dict] = {}
        self.log: list[dict] = []

    def pull_once(self, limit: int | None = None, tables: list[str] | None = None, cursor="keep") -> dict:
        body = {"client_id": self.client_id, "cursor": self.cursor if cursor == "keep" else cursor}
        if limit is not None:
            body["limit"] = limit
        if tables is not None:
            body["tables"] = tables
        response = self.http.post("/sync/v1/pull", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        self.log.append(answer)
        return answer

    def apply(self, answer: dict) -> None:
        if answer["reset"]:
            self.rows, self.cursor = {}, None
            return
        for table, changes in answer["changes"].items():
            rows = self.rows.setdefault(table, {})
            for row in changes["created"] + changes["updated"]:
                rows[_key(table, row)] = row
            for key in changes["deleted"]:
                rows.pop(key if isinstance(key, str) else json_key(key), None)
        self.cursor = answer["cursor"]

    def sync(self, limit: int | None = None) -> list[dict]:
        """Pull until has_more is false; returns the answers."""
        answers = []
        while True:
            answer = self.pull_once(limit)
            self.apply(answer)
            answers.append(answer)
            if answer["reset"]:
                continue
            if not answer["has_more"]:
                return answers

    def ids(self, table: str) -> set:
        return set(self.rows.get(table, {}))


def json_key(key: dict) -> str:
    import json

    return json.dumps(key, sort_keys=True)


def _key(table: str, row: dict):
    if table == "list_members":
        return json_key({"list_id": row["list_id"], "user_id": row["user_id"]})
    return row["id"]


def received(answers: list[dict], table: str, kind: str) -> list:
    return [item for a in answers for item in a["changes"].get(table, {}).get(kind, [])]


def push(device: SyncClient, changes: dict, mutation_id: str | None = None):
    """POST /sync/v1/push from `device` with its current cursor; returns the httpx response."""
    body = {"client_id": device.client_id, "mutation_id": mutation_id or uuid.uuid4().hex, "cursor": device.cursor,
            "changes": changes}
    return device.http.post("/sync/v1/push", json=body)


@pytest.fixture
def fast_metrics(monkeypatch):
    """Sync metrics sampled every 0.1 s (request it before `api`)."""
    from tuskbase.sync import metrics

    monkeypatch.setattr(metrics, "INTERVAL", 0.1)
