"""WatermelonDB pushes that row-level security refuses or that carry bad input, with the real client where a device
is involved: a refused write rejects synchronize() and stays pending on the device (never acknowledged while the
server keeps its row, never a conflict that pulling would resolve), and a create whose visibility goes through a
SECURITY DEFINER helper reading the same table is applied."""

from __future__ import annotations

import uuid

import pytest

from tests.watermelon.conftest import HarnessError, settle
from tests.watermelon.test_watermelon_protocol import todo, world  # noqa: F401  (world is a fixture)
from tests.watermelon.test_watermelon_sync import make_list, make_todo

# The usual Supabase pattern, and what examples/todo had before it put the owner test first: the list's select
# policy only through is_list_member(), a STABLE SECURITY DEFINER SQL function that reads public.lists.
HELPER_ONLY = """
drop policy lists_select on public.lists;
create policy lists_select on public.lists for select to authenticated using (public.is_list_member(id));
"""


def server_list(admin, list_id):
    row = admin.execute("select owner_id::text, title from public.lists where id = %s", (list_id,)).fetchone()
    return tuple(row) if row else None


def member_device(api, admin, devices):
    """Alice's list with a todo; Bob is a member (he sees the list, only Alice may update or delete it) and his
    laptop has synced it."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    shared = make_list(admin, alice, "alice's")
    milk = make_todo(admin, shared, "milk")
    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (shared, bob))
    settle(admin)
    devices.open("laptop", api.user_token(bob))
    devices.sync("laptop")
    assert set(devices.records("laptop", "lists")) == {shared}
    return alice, shared, milk


def test_a_list_created_offline_is_applied_when_its_select_policy_goes_through_a_helper(api, admin, running_feed,
                                                                                       devices):
    admin.execute(HELPER_ONLY)
    alice = uuid.uuid4()
    devices.open("phone", api.user_token(alice))
    devices.open("tablet", api.user_token(alice))
    devices.sync("phone")
    trip = devices.call("create", device="phone", table="lists", fields={"owner_id": str(alice), "title": "trip"})["id"]
    tent = devices.call("create", device="phone", table="todos",
                        fields={"list_id": trip, "title": "tent", "done": False})["id"]
    devices.sync("phone")
    assert server_list(admin, trip) == (str(alice), "trip")
    assert admin.execute("select title from public.todos where id = %s", (tent,)).fetchone() == ("tent",)
    assert not devices.call("unsynced", device="phone")
    assert devices.records("phone", "lists")[trip]["_status"] == "synced"
    settle(admin)
    devices.sync("tablet")
    assert set(devices.records("tablet", "lists")) == {trip} and set(devices.records("tablet", "todos")) == {tent}


def test_a_delete_the_member_may_not_make_rejects_the_sync_and_stays_pending(api, admin, running_feed, devices):
    _alice, shared, milk = member_device(api, admin, devices)
    devices.call("delete", device="laptop", table="lists", recordId=shared)
    devices.call("update", device="laptop", table="todos", recordId=milk, fields={"title": "oat milk"})
    with pytest.raises(HarnessError) as refused:
        devices.sync("laptop")
    assert refused.value.status == 403 and "SYNC126" in str(refused.value), str(refused.value)
    # The whole push is refused: the list stays, and the todo edit Bob may make is not applied either.
    assert server_list(admin, shared) is not None
    assert admin.execute("select title from public.todos where id = %s", (milk,)).fetchone() == ("milk",)
    # The device and the server do not silently disagree: the delete is still the device's pending change.
    assert devices.call("unsynced", device="laptop")
    assert shared in devices.call("records", device="laptop", table="lists")["deleted"]


def test_an_update_the_member_may_not_make_is_forbidden_not_a_conflict(api, admin, running_feed, devices):
    _alice, shared, _milk = member_device(api, admin, devices)
    devices.call("update", device="laptop", table="lists", recordId=shared, fields={"title": "bob's now"})
    for _attempt in range(2):  # pulling first (as a conflict would advise) changes nothing: no retry loop
        with pytest.raises(HarnessError) as refused:
            devices.sync("laptop")
        assert refused.value.status == 403 and "SYNC126" in str(refused.value), str(refused.value)
        assert "SYNC125" not in str(refused.value)
    assert server_list(admin, shared)[1] == "alice's"
    assert devices.call("unsynced", device="laptop")
    assert devices.records("laptop", "lists")[shared]["title"] == "bob's now"


def todos_of(admin):
    return admin.execute("select id, title, done, position from public.todos order by id").fetchall()


@pytest.mark.parametrize(("kind", "fields", "code"), [
    pytest.param("created", {"title": ["a"]}, "SYNC127", id="array-for-text"),
    pytest.param("updated", {"title": ["a"]}, "SYNC127", id="array-for-text-in-an-update"),
    pytest.param("created", {"title": {"a": 1}}, "SYNC127", id="object-for-text"),
    pytest.param("created", {"done": "yes"}, "SYNC127", id="string-for-boolean"),
    pytest.param("created", {"position": {"a": 1}}, "SYNC127", id="object-for-integer"),
    pytest.param("created", {"id": "abc\x00"}, "SYNC124", id="nul-in-an-id"),
    pytest.param("created", {"title\x00": "x"}, "SYNC123", id="nul-in-a-column-name"),
])
def test_bad_values_in_a_push_are_refused_and_change_nothing(world, kind, fields, code):  # noqa: F811
    admin, alice = world["admin"], world["alice"]
    record = {**todo(world["list"], "eggs"), **fields}
    if kind == "updated":
        record["id"] = world["milk"]
    before = todos_of(admin)
    answer = alice.push(alice.pull().json()["timestamp"], {"todos": {kind: [record]}})
    assert (answer.status_code, answer.json()["code"]) == (400, code), answer.text
    if code == "SYNC127":
        assert [r["reason"] for r in answer.json()["details"]["refused"]] == ["invalid"]
    assert todos_of(admin) == before


def test_a_nul_in_a_deleted_id_is_refused_and_changes_nothing(world):  # noqa: F811
    admin, alice = world["admin"], world["alice"]
    before = todos_of(admin)
    answer = alice.push(alice.pull().json()["timestamp"], {"todos": {"deleted": [world["milk"], "abc\x00"]}})
    assert (answer.status_code, answer.json()["code"]) == (400, "SYNC127"), answer.text
    assert [r["reason"] for r in answer.json()["details"]["refused"]] == ["invalid"]
    assert todos_of(admin) == before
