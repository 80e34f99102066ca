"""The real WatermelonDB client (LokiJS adapter, headless in Node) syncing with /sync/v1/watermelon.

Each device is a WatermelonDB database in the Node harness; `synchronize()` runs with a pullChanges/pushChanges
that only call our URLs. Server-side writes go through a superuser connection (another app writing), and
`settle()` waits until the feed has logged them.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.watermelon.conftest import HarnessError, settle


def make_list(admin, owner, title="groceries"):
    return str(admin.execute("insert into public.lists (owner_id, title) values (%s, %s) returning id",
                             (owner, title)).fetchone()[0])


def make_todo(admin, list_id, title, position=0):
    return str(admin.execute("insert into public.todos (list_id, title, position) values (%s, %s, %s) returning id",
                             (list_id, title, position)).fetchone()[0])


def server_todos(admin, list_id):
    return {str(i): (t, d) for i, t, d in admin.execute(
        "select id, title, done from public.todos where list_id = %s", (list_id,)).fetchall()}


def test_first_sync_then_offline_edits_on_two_devices_converge(api, admin, running_feed, devices):
    alice = uuid.uuid4()
    groceries = make_list(admin, alice)
    milk = make_todo(admin, groceries, "milk", 1)
    bread = make_todo(admin, groceries, "bread", 2)
    jam = make_todo(admin, groceries, "jam", 3)
    other = make_list(admin, uuid.uuid4(), "someone else's")
    make_todo(admin, other, "not alice's")
    settle(admin)

    devices.open("phone", api.user_token(alice))
    devices.open("tablet", api.user_token(alice))
    first = devices.sync("phone")
    assert first["pulls"][0]["lastPulledAt"] is None
    assert isinstance(first["pulls"][0]["timestamp"], int) and first["pulls"][0]["timestamp"] > 0
    devices.sync("tablet")
    for device in ("phone", "tablet"):
        todos = devices.records(device, "todos")
        assert set(todos) == {milk, bread, jam}, "only what alice may see"
        assert set(devices.records(device, "lists")) == {groceries}
        assert todos[milk]["title"] == "milk" and todos[milk]["done"] is False
        assert isinstance(todos[milk]["created_at"], int) and todos[milk]["created_at"] > 1_700_000_000_000
        assert todos[milk]["_status"] == "synced"

    # Offline: the phone adds eggs and deletes jam; the tablet ticks milk off and renames bread.
    eggs = devices.call("create", device="phone", table="todos",
                        fields={"list_id": groceries, "title": "eggs", "done": False})["id"]
    devices.call("delete", device="phone", table="todos", recordId=jam)
    devices.call("update", device="tablet", table="todos", recordId=milk, fields={"done": True})
    devices.call("update", device="tablet", table="todos", recordId=bread, fields={"title": "rye bread"})
    # Meanwhile on the server: a new todo, and a todo of alice's deleted.
    fresh = make_todo(admin, groceries, "from the web")
    settle(admin)

    phone = devices.sync("phone")
    assert phone["pushes"] and phone["pushes"][0]["changes"]["todos"]["deleted"] == [jam]
    settle(admin)
    devices.sync("tablet")
    settle(admin)
    devices.sync("phone")

    expected = {milk: ("milk", True), bread: ("rye bread", False), eggs: ("eggs", False),
                fresh: ("from the web", False)}
    assert server_todos(admin, groceries) == expected
    for device in ("phone", "tablet"):
        todos = devices.records(device, "todos")
        assert {i: (r["title"], r["done"]) for i, r in todos.items()} == expected, device
        assert all(r["_status"] == "synced" for r in todos.values())
    assert not devices.call("unsynced", device="phone") and not devices.call("unsynced", device="tablet")


def test_a_conflict_refuses_the_whole_push_and_pull_and_retry_resolves_it(api, admin, running_feed, devices):
    alice = uuid.uuid4()
    groceries = make_list(admin, alice)
    milk = make_todo(admin, groceries, "milk")
    settle(admin)
    devices.open("phone", api.user_token(alice))
    devices.open("tablet", api.user_token(alice))
    devices.sync("phone")
    devices.sync("tablet")

    # The tablet edits milk's title and adds a todo; it pulls, and before its push lands the phone renames milk.
    devices.call("update", device="tablet", table="todos", recordId=milk, fields={"title": "oat milk"})
    butter = devices.call("create", device="tablet", table="todos",
                          fields={"list_id": groceries, "title": "butter", "done": False})["id"]
    pending = devices.send("sync", device="tablet", pauseBeforePush=True)
    assert devices.wait(pending, final=False) == {"paused": True}
    devices.call("update", device="phone", table="todos", recordId=milk, fields={"title": "soy milk"})
    devices.sync("phone")
    settle(admin)
    devices.call("resume", device="tablet")
    with pytest.raises(HarnessError) as refused:
        devices.wait(pending)
    assert refused.value.status == 409 and "SYNC125" in str(refused.value)
    # Nothing of the refused push was applied, not even the new todo.
    assert server_todos(admin, groceries) == {milk: ("soy milk", False)}
    assert devices.call("unsynced", device="tablet")

    # Pull and retry: WatermelonDB keeps the tablet's own edit of the title over the phone's; the push then lands.
    devices.sync("tablet")
    settle(admin)
    assert server_todos(admin, groceries) == {milk: ("oat milk", False), butter: ("butter", False)}
    devices.sync("phone")
    assert {i: r["title"] for i, r in devices.records("phone", "todos").items()} == {milk: "oat milk",
                                                                                     butter: "butter"}
    # Replaying an applied push (a lost answer) changes nothing and answers the same.
    assert not devices.call("unsynced", device="tablet")


def test_revoked_membership_deletes_and_granted_creates_on_the_device(api, admin, running_feed, devices):
    alice, bob = uuid.uuid4(), uuid.uuid4()
    shared = make_list(admin, alice, "shared")
    milk = make_todo(admin, shared, "milk")
    own = make_list(admin, bob, "bob's")
    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (shared, bob))
    settle(admin)
    devices.open("bob", api.user_token(bob))
    devices.sync("bob")
    assert set(devices.records("bob", "lists")) == {shared, own}
    assert set(devices.records("bob", "todos")) == {milk}

    # Alice removes Bob and adds a todo: Bob's device loses the list and its todos, and never sees the new one.
    admin.execute("delete from public.list_members where list_id = %s and user_id = %s", (shared, bob))
    secret = make_todo(admin, shared, "after bob left")
    settle(admin)
    result = devices.sync("bob")
    pulled = result["pulls"][0]["changes"]
    assert set(pulled["lists"]["deleted"]) == {shared} and set(pulled["todos"]["deleted"]) == {milk}
    assert secret not in str(result), "a row Bob was never allowed to see is never sent, not even its id"
    assert set(devices.records("bob", "lists")) == {own}
    assert devices.records("bob", "todos") == {}

    # Bob cannot write into the list any more: the push is refused and nothing is applied.
    sneaky = devices.call("create", device="bob", table="todos",
                          fields={"list_id": shared, "title": "sneaky", "done": False})["id"]
    with pytest.raises(HarnessError) as refused:
        devices.sync("bob")
    assert refused.value.status in (400, 403)
    assert "sneaky" not in {t for t, _ in server_todos(admin, shared).values()}

    # Granted again: the list and all its todos arrive as created, and the todo Bob kept offline now lands.
    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (shared, bob))
    settle(admin)
    result = devices.sync("bob")
    pulled = result["pulls"][0]["changes"]
    assert {r["id"] for r in pulled["lists"]["created"]} == {shared}
    assert {r["id"] for r in pulled["todos"]["created"]} == {milk, secret}
    assert set(devices.records("bob", "todos")) == {milk, secret, sneaky}
    assert set(devices.records("bob", "lists")) == {shared, own}
    assert sneaky in server_todos(admin, shared)


def test_schema_migration_pulls_the_added_columns(api, admin, running_feed, devices):
    alice = uuid.uuid4()
    groceries = make_list(admin, alice)
    milk = make_todo(admin, groceries, "milk", 7)
    bread = make_todo(admin, groceries, "bread", 9)
    settle(admin)
    devices.open("phone", api.user_token(alice), schema_version=1)
    devices.sync("phone")
    assert "position" not in devices.records("phone", "todos")[milk]

    # The app ships version 2, whose todos have `position`: the next sync asks for it through `migration`.
    devices.open("phone", api.user_token(alice), schema_version=2)
    assert devices.records("phone", "todos")[milk]["position"] == 0, "a fresh column is empty before the sync"
    result = devices.sync("phone")
    pull = result["pulls"][0]
    assert pull["migration"] == {"from": 1, "tables": [], "columns": [{"table": "todos", "columns": ["position"]}]}
    todos = devices.records("phone", "todos")
    assert todos[milk]["position"] == 7 and todos[bread]["position"] == 9
    assert {r["id"] for r in pull["changes"]["todos"]["updated"]} == {milk, bread}
    assert all(r["_status"] == "synced" for r in todos.values())


def test_limit_pages_the_first_sync_with_has_more(api, admin, running_feed, devices):
    alice = uuid.uuid4()
    groceries = make_list(admin, alice)
    ids = {make_todo(admin, groceries, f"todo {i}", i) for i in range(7)}
    settle(admin)
    devices.open("phone", api.user_token(alice))
    result = devices.sync("phone", limit=3)
    assert len(result["pulls"]) >= 3
    assert all(sum(len(c["created"]) + len(c["updated"]) + len(c["deleted"]) for c in p["changes"].values()) <= 3
               for p in result["pulls"])
    assert [p["has_more"] for p in result["pulls"]][-1] is False
    assert set(devices.records("phone", "todos")) == ids


def test_a_cursor_older_than_the_kept_history_is_answered_with_a_replacement(api, admin, running_feed, devices):
    alice = uuid.uuid4()
    groceries = make_list(admin, alice)
    milk = make_todo(admin, groceries, "milk")
    bread = make_todo(admin, groceries, "bread")
    settle(admin)
    devices.open("phone", api.user_token(alice))
    devices.sync("phone")
    offline = devices.call("create", device="phone", table="todos",
                           fields={"list_id": groceries, "title": "written offline", "done": False})["id"]
    # While the phone is away, bread is deleted and tea added, and retention prunes the log past its cursor.
    admin.execute("delete from public.todos where id = %s", (bread,))
    tea = make_todo(admin, groceries, "tea")
    settle(admin)
    admin.execute("update sync.feed_state set pruned_seq = seq")

    result = devices.sync("phone")
    assert result["pulls"][0]["strategy"] == "replacement"
    assert result["pulls"][0]["changes"]["todos"]["deleted"] == []  # the log that knew of bread is gone ...
    todos = devices.records("phone", "todos")
    assert set(todos) == {milk, tea, offline}  # ... yet the replacement drops it; the offline todo is pushed
    assert server_todos(admin, groceries) == {milk: ("milk", False), tea: ("tea", False),
                                              offline: ("written offline", False)}


def test_a_device_on_the_live_channel_syncs_when_poked_and_only_then(api, admin, running_feed, devices):
    alice, bob = uuid.uuid4(), uuid.uuid4()
    groceries = make_list(admin, alice)
    make_list(admin, bob, "bob's")
    settle(admin)
    for device, user in (("phone", alice), ("tablet", alice), ("bob", bob)):
        devices.open(device, api.user_token(user))
        devices.sync(device)
    devices.call("live", device="phone")
    devices.call("live", device="bob")

    # The tablet adds a todo and syncs; the phone learns of it by itself (poke -> synchronize), Bob does not.
    added = devices.call("create", device="tablet", table="todos",
                         fields={"list_id": groceries, "title": "from the tablet", "done": False})["id"]
    devices.sync("tablet")
    deadline = time.monotonic() + 10
    while added not in devices.records("phone", "todos"):
        assert time.monotonic() < deadline, devices.call("liveStatus", device="phone")
        time.sleep(0.05)
    phone = devices.call("liveStatus", device="phone")
    assert phone["pokes"] >= 1 and phone["syncs"] >= 1 and not phone["errors"]
    # A change Bob may see pokes him, and his poke comes after (not before) the tablet's: none was his.
    admin.execute("insert into public.lists (owner_id, title) values (%s, 'bob again')", (bob,))
    deadline = time.monotonic() + 10
    while devices.call("liveStatus", device="bob")["syncs"] < 1:
        assert time.monotonic() < deadline, devices.call("liveStatus", device="bob")
        time.sleep(0.05)
    assert devices.call("liveStatus", device="bob")["pokes"] == 1
    assert len(devices.records("bob", "lists")) == 2
    devices.call("unlive", device="phone")
    devices.call("unlive", device="bob")
