"""/sync/v1/watermelon at the HTTP level: parameters, WatermelonDB's server rules, errors, cross-user refusals."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.watermelon.conftest import settle

URL = "/sync/v1/watermelon"


class Client:
    def __init__(self, api, user):
        self.api = api
        self.http = httpx.Client(base_url=api.url, headers=api.headers(api.user_token(user)), timeout=30)

    def pull(self, **params):
        return self.http.get(URL, params={"schema_version": "1", **params})

    def push(self, last_pulled_at, changes, **params):
        return self.http.post(URL, params={"last_pulled_at": str(last_pulled_at), **params},
                              content=json.dumps({"changes": changes, "lastPulledAt": last_pulled_at}))


def todo(list_id, title, **extra):
    record = {"id": str(uuid.uuid4()), "list_id": list_id, "title": title, "done": False,
              "created_at": 1_767_225_600_000, "updated_at": 1_767_225_600_000, "_status": "created", "_changed": ""}
    return {**record, **extra}


@pytest.fixture
def world(api, admin, running_feed):
    alice, bob = uuid.uuid4(), uuid.uuid4()
    groceries = str(admin.execute("insert into public.lists (owner_id, title) values (%s, 'groceries') returning id",
                                  (alice,)).fetchone()[0])
    milk = str(admin.execute("insert into public.todos (list_id, title) values (%s, 'milk') returning id",
                             (groceries,)).fetchone()[0])
    settle(admin)
    return {"alice": Client(api, alice), "bob": Client(api, bob), "list": groceries, "milk": milk, "admin": admin}


def title_of(admin, todo_id):
    row = admin.execute("select title from public.todos where id = %s", (todo_id,)).fetchone()
    return row[0] if row else None


@pytest.mark.parametrize(("params", "status", "code"), [
    ({"last_pulled_at": "abc"}, 400, "SYNC120"),
    ({"last_pulled_at": "-1"}, 400, "SYNC120"),
    ({"last_pulled_at": "987654321"}, 400, "SYNC120"),
    ({"schema_version": "x"}, 400, "SYNC121"),
    ({"migration": "{not json"}, 400, "SYNC121"),
    ({"migration": '{"from": "one"}'}, 400, "SYNC121"),
    ({"limit": "0"}, 400, "SYNC121"),
])
def test_bad_pull_parameters_are_answered_in_the_sync_error_format(world, params, status, code):
    answer = world["alice"].pull(**params)
    assert answer.status_code == status and answer.json()["code"] == code, answer.text


def test_pull_as_the_docs_example_sends_it_and_without_a_token(api, world):
    # WatermelonDB's docs interpolate null into the URL on a first sync.
    answer = world["alice"].pull(last_pulled_at="null", migration="null")
    assert answer.status_code == 200
    body = answer.json()
    assert isinstance(body["timestamp"], int) and body["timestamp"] > 0
    assert [r["id"] for r in body["changes"]["todos"]["created"]] == [world["milk"]]
    assert "list_members" not in body["changes"], "a composite key cannot be a WatermelonDB record"
    assert all("_status" not in r and "_changed" not in r for r in body["changes"]["todos"]["created"])
    anonymous = httpx.get(api.url + URL, params={"schema_version": "1"})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "SYNC105"


def test_a_timestamp_of_another_user_is_refused(world):
    alice_timestamp = world["alice"].pull().json()["timestamp"]
    answer = world["bob"].pull(last_pulled_at=str(alice_timestamp))
    assert answer.status_code == 400 and answer.json()["code"] == "SYNC120"
    answer = world["bob"].push(alice_timestamp, {"todos": {"created": [], "updated": [], "deleted": [world["milk"]]}})
    assert answer.status_code == 400 and answer.json()["code"] == "SYNC120"
    assert title_of(world["admin"], world["milk"]) == "milk"


@pytest.mark.parametrize(("changes", "code"), [
    ({"projects": {"created": [], "updated": [], "deleted": []}}, "SYNC122"),
    ({"list_members": {"created": [], "updated": [], "deleted": []}}, "SYNC122"),
    ({"todos": {"created": [{"id": "x", "list_id": "L", "title": "t", "colour": "red"}]}}, "SYNC123"),
    ({"todos": {"created": [{"list_id": "L", "title": "no id"}]}}, "SYNC124"),
    ({"todos": {"created": [{"id": "not-a-uuid", "list_id": "L", "title": "t"}]}}, "SYNC124"),
    ({"todos": {"updated": [{"id": "L", "created_at": "yesterday"}]}}, "SYNC124"),
    ({"todos": {"deleted": [42]}}, "SYNC124"),
    ({"todos": {"deleted": ["not-a-uuid"]}}, "SYNC127"),
    ({"todos": {"created": [], "upserted": []}}, "SYNC124"),
])
def test_unknown_tables_columns_and_malformed_records_are_refused(world, changes, code):
    client = world["alice"]
    timestamp = client.pull().json()["timestamp"]
    text = json.dumps(changes).replace('"L"', json.dumps(world["list"]))
    answer = client.push(timestamp, json.loads(text))
    assert answer.status_code == 400 and answer.json()["code"] == code, answer.text
    assert title_of(world["admin"], world["milk"]) == "milk"


def test_server_rules_created_exists_updated_missing_deleted_missing(world):
    client, admin = world["alice"], world["admin"]
    timestamp = client.pull().json()["timestamp"]
    # A created record that exists is an update (its last push was applied, but the answer was lost).
    again = todo(world["list"], "milk, again", id=world["milk"])
    # An updated record the server never had is created; deleting an id that does not exist is ignored.
    stray = todo(world["list"], "stray", _status="updated", _changed="title")
    answer = client.push(timestamp, {"todos": {"created": [again], "updated": [stray],
                                               "deleted": [str(uuid.uuid4())]}})
    assert answer.status_code == 200, answer.text
    assert title_of(admin, world["milk"]) == "milk, again"
    assert title_of(admin, stray["id"]) == "stray"


def test_updating_a_record_deleted_on_the_server_is_a_conflict(world):
    client, admin = world["alice"], world["admin"]
    timestamp = client.pull().json()["timestamp"]
    admin.execute("delete from public.todos where id = %s", (world["milk"],))
    settle(admin)
    extra = todo(world["list"], "extra")
    answer = client.push(timestamp, {"todos": {
        "created": [extra], "updated": [{"id": world["milk"], "title": "renamed", "_changed": "title"}]}})
    assert answer.status_code == 409 and answer.json()["code"] == "SYNC125"
    assert answer.json()["details"]["refused"] == [{"table": "todos", "id": world["milk"], "reason": "deleted"}]
    assert title_of(admin, extra["id"]) is None, "nothing applied"


def test_a_push_is_idempotent_and_status_fields_are_ignored(world):
    client, admin = world["alice"], world["admin"]
    timestamp = client.pull().json()["timestamp"]
    changes = {"todos": {"updated": [{"id": world["milk"], "title": "oat milk", "_status": "updated",
                                      "_changed": "title"}]}}
    assert client.push(timestamp, changes).status_code == 200
    admin.execute("update public.todos set title = 'changed later' where id = %s", (world["milk"],))
    # The same push replayed (its answer was lost) is not applied a second time.
    assert client.push(timestamp, changes).status_code == 200
    assert title_of(admin, world["milk"]) == "changed later"
    # The body as WatermelonDB's docs example sends it: the changes alone, lastPulledAt in the query.
    body = {"todos": {"created": [todo(world["list"], "bare body")], "updated": [], "deleted": []}}
    answer = client.http.post(URL, params={"last_pulled_at": str(timestamp)}, content=json.dumps(body))
    assert answer.status_code == 200, answer.text


def test_another_users_records_can_be_neither_read_nor_written(world):
    bob, admin = world["bob"], world["admin"]
    first = bob.pull().json()
    assert all(not c["created"] for c in first["changes"].values())
    hijack = {"todos": {"updated": [{"id": world["milk"], "title": "bob was here", "_changed": "title"}],
                        "deleted": [world["milk"]]}}
    answer = bob.push(first["timestamp"], hijack)
    assert answer.status_code in (403, 409), answer.text
    assert title_of(admin, world["milk"]) == "milk"
    into_her_list = {"todos": {"created": [todo(world["list"], "bob's")]}}
    answer = bob.push(first["timestamp"], into_her_list)
    assert answer.status_code == 403 and answer.json()["code"] == "SYNC126", answer.text
