"""Bad input to the sync surfaces (/sync/v1/pull, /sync/v1/push, /sync/v1/watermelon): each gets a coded 4xx in
the sync error format, and changes nothing (app tables, client records, view records, WatermelonDB timestamps).
Each of these was a 500 once."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.sync.conftest import SyncClient, drain, make_list, make_todo, new_user

DEEP = 100_000
WATERMELON = "/sync/v1/watermelon"


@dataclass
class World:
    api: Any
    http: httpx.Client  # alice's headers
    phone: SyncClient  # synced once, all tables
    todos_only: SyncClient  # synced once, tables=["todos"]
    timestamp: int  # alice's WatermelonDB timestamp
    list_id: str
    todo_id: str
    table_ids: dict[str, int]


@pytest.fixture
def world(api, admin, feed) -> World:
    alice = new_user()
    groceries = make_list(admin, alice, "groceries")
    milk = make_todo(admin, groceries, "milk")
    drain(feed)
    phone = SyncClient(api, alice)
    phone.sync()
    todos_only = SyncClient(api, alice)
    todos_only.apply(todos_only.pull_once(tables=["todos"]))
    http = httpx.Client(base_url=api.url, headers=api.headers(api.user_token(alice)), timeout=60)
    timestamp = http.get(WATERMELON, params={"schema_version": "1"}).json()["timestamp"]
    table_ids = {name: tbl for name, tbl in admin.execute(
        "select c.relname, t.id from sync.tables t join pg_class c on c.oid = t.relid")}
    return World(api, http, phone, todos_only, timestamp, groceries, milk, table_ids)


STATE = [
    "select id::text, title from public.lists order by id",
    "select id::text, title, done from public.todos order by id",
    "select list_id::text, user_id::text from public.list_members order by 1, 2",
    "select client_id, user_key, pull_no, nonce, prev_nonce, seen_at::text from sync.clients order by client_id",
    "select client_id, tbl, key, version, prev_version, pull_no from sync.client_rows order by 1, 2, 3",
    "select id, client_id, cursor from sync.watermelon_pulls order by id",
]


def snapshot(admin) -> list[list[tuple]]:
    return [admin.execute(query).fetchall() for query in STATE]


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def recode(cursor: str, change: Callable[[dict], None]) -> str:
    """A cursor of one's own, decoded, changed and encoded again (cursors are not secret)."""
    raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    change(raw)
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


def pull_body(device: SyncClient, **fields: Any) -> bytes:
    return json.dumps({"client_id": device.client_id, "cursor": device.cursor, **fields}).encode()


def push_body(device: SyncClient, changes: Any, **fields: Any) -> bytes:
    return json.dumps({"client_id": device.client_id, "mutation_id": uuid.uuid4().hex, "cursor": device.cursor,
                       "changes": changes, **fields}).encode()


def with_diff(w: World, diff: Any, device: str = "phone") -> bytes:
    """A pull carrying the device's own cursor with its diff state replaced by `diff`."""
    client: SyncClient = getattr(w, device)

    def change(raw: dict) -> None:
        raw["d"] = diff(raw, w) if callable(diff) else diff

    body: dict[str, Any] = {"client_id": client.client_id, "cursor": recode(client.cursor, change)}
    if device == "todos_only":
        body["tables"] = ["todos"]
    return json.dumps(body).encode()


def seq_of(cursor: str) -> int:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["s"]


def good_diff(raw: dict, w: World, **fields: Any) -> dict:
    return {"u": raw["s"], "q": [w.table_ids["todos"]], "ph": "a", "k": None, "f": False, **fields}


def watermelon_push(w: World, changes: Any, last: Any = None) -> tuple[str, str, dict, bytes]:
    last = w.timestamp if last is None else last
    return ("POST", WATERMELON, {"last_pulled_at": str(w.timestamp)},
            json.dumps({"changes": changes, "lastPulledAt": last}).encode())


def todo(w: World, **fields: Any) -> dict:
    return {"id": str(uuid.uuid4()), "list_id": w.list_id, "title": "eggs", **fields}


# Each case: (request built from the world, expected status, expected code).
CASES: dict[str, tuple[Callable[[World], tuple[str, str, dict, bytes]], int, str]] = {
    # JSON nested 100,000 levels deep, to every JSON body.
    "push-deep-json": (lambda w: ("POST", "/sync/v1/push", {},
                                  b'{"client_id": "x", "mutation_id": "m", "changes": ' + nested(DEEP) + b"}"),
                       400, "SYNC108"),
    "pull-deep-json": (lambda w: ("POST", "/sync/v1/pull", {}, b'{"client_id": "x", "tables": ' + nested(DEEP) + b"}"),
                       400, "SYNC108"),
    "watermelon-push-deep-json": (lambda w: ("POST", WATERMELON, {"last_pulled_at": str(w.timestamp)}, nested(DEEP)),
                                  400, "SYNC108"),
    "push-deep-json-in-a-value": (lambda w: ("POST", "/sync/v1/push", {}, push_body(
        w.phone, {"todos": {"created": [todo(w, title=json.loads(nested(300)))]}})), 400, "SYNC108"),
    # NUL characters.
    "pull-nul-in-client-id": (lambda w: ("POST", "/sync/v1/pull", {}, json.dumps({"client_id": "phone\x00"}).encode()),
                              400, "SYNC103"),
    "push-nul-in-client-id": (lambda w: ("POST", "/sync/v1/push", {}, json.dumps(
        {"client_id": "phone\x00", "mutation_id": "m", "changes": {}}).encode()), 400, "SYNC103"),
    "push-nul-in-a-deleted-id": (lambda w: ("POST", "/sync/v1/push", {}, push_body(
        w.phone, {"todos": {"deleted": [w.todo_id[:-1] + "\x00"]}})), 409, "SYNC110"),
    "push-nul-in-a-column-name": (lambda w: ("POST", "/sync/v1/push", {}, push_body(
        w.phone, {"todos": {"created": [todo(w, **{"title\x00": "x"})]}})), 409, "SYNC110"),
    "watermelon-nul-in-a-deleted-id": (lambda w: watermelon_push(w, {"todos": {"deleted": [w.todo_id, "abc\x00"]}}),
                                       400, "SYNC127"),
    "watermelon-nul-in-a-column-name": (lambda w: watermelon_push(w, {"todos": {"created": [
        todo(w, **{"title\x00": "x"})]}}), 400, "SYNC123"),
    # Numbers no timestamp can be.
    "watermelon-push-last-pulled-at-10e30": (lambda w: watermelon_push(w, {"todos": {"deleted": [w.todo_id]}},
                                                                       last=10**30), 400, "SYNC120"),
    "watermelon-pull-last-pulled-at-10e30": (lambda w: ("GET", WATERMELON,
                                                        {"schema_version": "1", "last_pulled_at": str(10**30)}, b""),
                                             400, "SYNC120"),
    # A migration parameter nested 5,000 levels deep.
    "watermelon-deep-migration": (lambda w: ("GET", WATERMELON, {
        "schema_version": "2", "last_pulled_at": str(w.timestamp),
        "migration": '{"from": 1, "tables": ' + "[" * 5000 + "]" * 5000 + "}"}, b""), 400, "SYNC121"),
    # Re-encoded cursors of one's own.
    "cursor-diff-names-other-tables": (lambda w: ("POST", "/sync/v1/pull", {}, with_diff(
        w, lambda raw, w: good_diff(raw, w, q=[w.table_ids["lists"]]), "todos_only")), 400, "SYNC101"),
    "cursor-diff-not-an-object": (lambda w: ("POST", "/sync/v1/pull", {}, with_diff(w, [1, 2])), 400, "SYNC101"),
    "cursor-diff-blocks-not-a-number": (lambda w: ("POST", "/sync/v1/pull", {}, with_diff(
        w, lambda raw, w: good_diff(raw, w, b={"x": 1}))), 400, "SYNC101"),
    "cursor-diff-without-target": (lambda w: ("POST", "/sync/v1/pull", {}, with_diff(
        w, lambda raw, w: {k: v for k, v in good_diff(raw, w).items() if k != "u"})), 400, "SYNC101"),
    "cursor-diff-bad-position": (lambda w: ("POST", "/sync/v1/pull", {}, with_diff(
        w, lambda raw, w: good_diff(raw, w, k="(1,x)"))), 400, "SYNC101"),
    "cursor-seq-a-string": (lambda w: ("POST", "/sync/v1/pull", {}, json.dumps({
        "client_id": w.phone.client_id, "cursor": recode(w.phone.cursor, lambda raw: raw.update(s=str(raw["s"])))
    }).encode()), 400, "SYNC101"),
    "cursor-nested-deep": (lambda w: ("POST", "/sync/v1/pull", {}, json.dumps({
        "client_id": w.phone.client_id,
        "cursor": base64.urlsafe_b64encode(nested(DEEP)).decode().rstrip("=")}).encode()), 400, "SYNC101"),
    # A cursor past the feed, in both places a position can be.
    "cursor-seq-past-the-feed": (lambda w: ("POST", "/sync/v1/pull", {}, json.dumps({
        "client_id": w.phone.client_id, "cursor": recode(w.phone.cursor, lambda raw: raw.update(s=10**20))
    }).encode()), 400, "SYNC107"),
    "cursor-diff-target-past-the-feed": (lambda w: ("POST", "/sync/v1/pull", {}, with_diff(
        w, lambda raw, w: good_diff(raw, w, u=raw["s"] + 1000))), 400, "SYNC107"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_a_coded_4xx_and_changes_nothing(world, admin, case):
    build, status, code = CASES[case]
    method, path, params, body = build(world)
    before = snapshot(admin)
    answer = world.http.request(method, path, params=params, content=body or None,
                                headers={"content-type": "application/json"})
    assert (answer.status_code, answer.json().get("code")) == (status, code), answer.text[:500]
    assert answer.json()["message"]
    assert snapshot(admin) == before


def test_the_cursors_the_server_issues_still_work(world, admin):
    """The shape checks accept every cursor a pull hands out: mid-diff (paged) and incremental ones."""
    make_todo(admin, world.list_id, "bread")
    device = SyncClient(world.api, world.phone.user_id)
    answers = device.sync(limit=1)
    assert len(answers) >= 3 and not answers[-1]["has_more"]
    assert len(device.ids("todos")) == 2
    assert seq_of(device.cursor) >= seq_of(world.phone.cursor)


def reference_depth(value: Any) -> int:
    if isinstance(value, dict | list):
        inner = value.values() if isinstance(value, dict) else value
        return 1 + max((reference_depth(item) for item in inner), default=0)
    return 0


@pytest.mark.parametrize("value", [
    ["[[[[[[[[[[", {"{{{{{{{{": "]]]]"}],  # brackets inside strings do not nest
    ['\\"[[[[[[[[[', ["a\\", [["\\\\"]]], "x\n[[[[[[["],  # escaped quotes and backslashes
    json.loads(nested(8)),
    {"a": [{"b": [{"c": [1, "[{"]}]}]},
])
def test_the_depth_bound_counts_only_structure(value):
    from tuskbase.sync.body import too_deep

    raw = json.dumps(value).encode()
    depth = reference_depth(value)
    assert not too_deep(raw, depth) and not too_deep(raw.decode(), depth)
    assert too_deep(raw, depth - 1)


def test_a_body_at_the_depth_bound_is_accepted(world, admin):
    """A body 64 levels deep (the default bound) is refused for its shape, not its depth; 65 levels is SYNC108."""
    answer = world.http.post("/sync/v1/push", content=push_body(world.phone, json.loads(nested(64 - 1))))
    assert answer.json()["code"] != "SYNC108", answer.text
    answer = world.http.post("/sync/v1/push", content=push_body(world.phone, json.loads(nested(64))))
    assert answer.json()["code"] == "SYNC108", answer.text
