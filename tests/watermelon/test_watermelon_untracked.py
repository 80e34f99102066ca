"""The real WatermelonDB client, with a policy input that is not tracked: the todo app without
`sync.enable('public.list_members')`. A membership granted or revoked leaves nothing in the change log; the next
synchronize() must still bring the list and its todos in, and take them out again."""

from __future__ import annotations

import uuid

import pytest

from tests.watermelon.conftest import settle
from tests.watermelon.test_watermelon_sync import make_list, make_todo


@pytest.fixture
def untracked_members(admin):
    admin.execute("select sync.disable('public.list_members')")


def test_a_grant_and_a_revocation_reach_the_device_with_nothing_logged(api, admin, untracked_members, running_feed,
                                                                        devices):
    alice, bob = uuid.uuid4(), uuid.uuid4()
    shared = make_list(admin, alice, "shared")
    todos = {make_todo(admin, shared, f"t{i}") for i in range(3)}
    settle(admin)
    devices.open("laptop", api.user_token(bob))
    devices.sync("laptop")
    assert devices.records("laptop", "todos") == {} and devices.records("laptop", "lists") == {}
    still = admin.execute("select seq from sync.feed_state").fetchone()[0]

    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (shared, bob))
    settle(admin)
    devices.sync("laptop")
    assert set(devices.records("laptop", "lists")) == {shared}
    assert set(devices.records("laptop", "todos")) == todos

    admin.execute("delete from public.list_members where list_id = %s and user_id = %s", (shared, bob))
    settle(admin)
    result = devices.sync("laptop")
    assert set(result["pulls"][-1]["changes"]["todos"]["deleted"]) == todos
    assert devices.records("laptop", "todos") == {} and devices.records("laptop", "lists") == {}
    assert admin.execute("select seq from sync.feed_state").fetchone()[0] == still  # only the re-diff could tell

    # And a device whose rules did not move gets nothing on the next sync.
    again = devices.sync("laptop")
    assert all(not c["created"] and not c["updated"] and not c["deleted"]
               for p in again["pulls"] for c in p["changes"].values())
