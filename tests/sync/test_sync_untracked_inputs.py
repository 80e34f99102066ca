"""Pull: a served table whose policies read a table that is not in `sync.tables` (an untracked policy input).

Changes to such an input never reach the change log, so neither the change log nor the "nothing new" answer can
tell that the rules moved: the table is re-diffed on every pull. The todo app without
`sync.enable('public.list_members')`: the todos' and lists' policies read list_members through is_list_member().
"""

from __future__ import annotations

import pytest

from tests.sync.conftest import SyncClient, drain, make_list, make_todo, new_user, received


@pytest.fixture
def untracked_members(admin):
    """list_members out of sync.tables (and the publication): its writes are not logged."""
    admin.execute("select sync.disable('public.list_members')")


def grant(admin, list_id: str, user: str) -> None:
    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (list_id, user))


def revoke(admin, list_id: str, user: str) -> None:
    admin.execute("delete from public.list_members where list_id = %s and user_id = %s", (list_id, user))


def test_a_grant_and_a_revocation_reach_the_device_while_the_feed_is_still(api, admin, feed, untracked_members):
    alice, bob = new_user(), new_user()
    shared = make_list(admin, alice, "shared")
    todos = {make_todo(admin, shared, f"t{i}") for i in range(4)}
    drain(feed)
    phone = SyncClient(api, bob)
    phone.sync()
    assert phone.ids("todos") == set() and phone.ids("lists") == set()
    still = admin.execute("select seq from sync.feed_state").fetchone()[0]

    grant(admin, shared, bob)
    drain(feed)
    answers = phone.sync()
    assert {r["id"] for r in received(answers, "todos", "created")} == todos
    assert phone.ids("lists") == {shared} and phone.ids("todos") == todos
    assert not answers[-1]["has_more"]

    revoke(admin, shared, bob)
    drain(feed)
    answers = phone.sync()
    assert set(received(answers, "todos", "deleted")) == todos
    assert set(received(answers, "lists", "deleted")) == {shared}
    assert phone.ids("todos") == set() and phone.ids("lists") == set()
    # Nothing was logged meanwhile: only the re-diff could have told.
    assert admin.execute("select seq from sync.feed_state").fetchone()[0] == still


def test_pulls_with_nothing_changed_send_nothing_and_end(api, admin, feed, untracked_members):
    alice, bob = new_user(), new_user()
    shared = make_list(admin, alice, "shared")
    grant(admin, shared, bob)
    todos = {make_todo(admin, shared, f"t{i}") for i in range(7)}
    drain(feed)
    phone = SyncClient(api, bob)
    phone.sync(limit=3)  # a paged first sync
    assert phone.ids("todos") == todos
    for _ in range(3):
        answers = phone.sync(limit=3)
        assert len(answers) == 1 and not answers[0]["has_more"]
        assert all(not c["created"] and not c["updated"] and not c["deleted"]
                   for c in answers[0]["changes"].values())


def test_logged_changes_still_arrive_beside_the_re_diff(api, admin, feed, untracked_members):
    alice, bob = new_user(), new_user()
    shared, other = make_list(admin, alice, "shared"), make_list(admin, alice, "other")
    grant(admin, shared, bob)
    first = make_todo(admin, shared, "first")
    drain(feed)
    phone = SyncClient(api, bob)
    phone.sync()
    assert phone.ids("todos") == {first}

    # One logged write (a new todo) and one unlogged (a second grant), in paged answers.
    extra = {make_todo(admin, shared, f"new{i}") for i in range(5)}
    grant(admin, other, bob)
    hidden = {make_todo(admin, other, f"o{i}") for i in range(5)}
    admin.execute("update public.todos set title = 'renamed' where id = %s", (first,))
    drain(feed)
    phone.sync(limit=2)
    assert phone.ids("todos") == {first} | extra | hidden
    assert phone.rows["todos"][first]["title"] == "renamed"
    assert phone.ids("lists") == {shared, other}


def test_tracked_inputs_keep_the_nothing_new_answer(api, admin, feed):
    """With list_members tracked (the todo app as shipped), a pull with nothing logged reads no synced table."""
    from tests.sync.conftest import changes

    alice = new_user()
    make_todo(admin, make_list(admin, alice), "milk")
    drain(feed)
    phone = SyncClient(api, alice)
    phone.sync()
    cursor = phone.cursor
    assert changes(admin)
    answer = phone.pull_once()
    assert answer["cursor"] == cursor  # the "nothing new" answer hands the same cursor back
