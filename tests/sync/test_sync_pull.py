"""Pull: RLS-correct deltas with move-in and move-out, paging, cursors, lost answers, reset."""

from __future__ import annotations

import uuid

import psycopg

from tests.sync.conftest import SyncClient, drain, make_list, make_todo, new_user, received


def ids(answers, table, kind):
    return {row["id"] if isinstance(row, dict) else row for row in received(answers, table, kind)}


def test_first_pull_returns_only_what_the_user_may_see(api, admin, feed):
    alice, bob = new_user(), new_user()
    mine = make_list(admin, alice)
    todos = {make_todo(admin, mine, f"a{i}") for i in range(3)}
    theirs = make_list(admin, bob)
    hidden = make_todo(admin, theirs, "bob's")
    drain(feed)
    device = SyncClient(api, alice)
    device.sync()
    assert device.ids("lists") == {mine}
    assert device.ids("todos") == todos
    assert hidden not in device.ids("todos") and theirs not in device.ids("lists")
    only = SyncClient(api, alice)
    answer = only.pull_once(tables=["todos", "todos"])
    assert list(answer["changes"]) == ["todos"]
    assert {r["id"] for r in answer["changes"]["todos"]["created"]} == todos


def test_membership_grant_and_revocation_move_rows_in_and_out(api, admin, feed):
    alice, bob = new_user(), new_user()
    shared = make_list(admin, alice, "shared")
    todos = {make_todo(admin, shared, f"t{i}") for i in range(4)}
    drain(feed)
    phone = SyncClient(api, bob)
    phone.sync()
    assert phone.ids("todos") == set() and phone.ids("lists") == set()

    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (shared, bob))
    drain(feed)
    answers = phone.sync()
    assert ids(answers, "todos", "created") == todos
    assert ids(answers, "lists", "created") == {shared}
    assert phone.ids("todos") == todos

    admin.execute("delete from public.list_members where list_id = %s and user_id = %s", (shared, bob))
    drain(feed)
    answers = phone.sync()
    assert set(received(answers, "todos", "deleted")) == todos
    assert set(received(answers, "lists", "deleted")) == {shared}
    assert phone.ids("todos") == set() and phone.ids("lists") == set() and phone.ids("list_members") == set()


def test_update_out_of_view_and_delete_arrive_as_deletes_never_seen_rows_never_sent(api, admin, feed):
    alice, bob = new_user(), new_user()
    shared = make_list(admin, alice)
    private = make_list(admin, alice)
    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (shared, bob))
    moving, deleted, kept = (make_todo(admin, shared, t) for t in ("moving", "deleted", "kept"))
    drain(feed)
    phone = SyncClient(api, bob)
    phone.sync()
    assert phone.ids("todos") == {moving, deleted, kept}

    admin.execute("update public.todos set list_id = %s where id = %s", (private, moving))
    admin.execute("delete from public.todos where id = %s", (deleted,))
    admin.execute("update public.todos set title = 'renamed' where id = %s", (kept,))
    ghost = make_todo(admin, private, "never visible to bob")
    admin.execute("update public.todos set title = 'still hidden' where id = %s", (ghost,))
    gone_ghost = make_todo(admin, private, "created and deleted")
    admin.execute("delete from public.todos where id = %s", (gone_ghost,))
    drain(feed)
    answers = phone.sync()
    assert set(received(answers, "todos", "deleted")) == {moving, deleted}
    assert [r["title"] for r in received(answers, "todos", "updated")] == ["renamed"]
    everything = str(answers)
    assert ghost not in everything and gone_ghost not in everything and private not in everything


def test_commits_out_of_start_order_are_all_delivered(api, admin, feed, database):
    alice = new_user()
    mine = make_list(admin, alice)
    drain(feed)
    device = SyncClient(api, alice)
    device.sync()
    with psycopg.connect(database) as slow:
        slow.execute("insert into public.todos (list_id, title) values (%s, 'started first')", (mine,))
        fast = make_todo(admin, mine, "committed first")
        drain(feed)
        answers = device.sync()
        assert ids(answers, "todos", "created") == {fast}
        slow.commit()
    drain(feed)
    answers = device.sync()
    assert [r["title"] for r in received(answers, "todos", "created")] == ["started first"]


def test_paging_delivers_every_row_once(api, admin, feed):
    alice = new_user()
    mine = make_list(admin, alice)
    todos = {make_todo(admin, mine, f"t{i}") for i in range(23)}
    drain(feed)
    device = SyncClient(api, alice)
    answers = device.sync(limit=5)
    assert len(answers) >= 5
    assert all(sum(len(v) for c in a["changes"].values() for v in c.values()) <= 5 for a in answers)
    created = [r["id"] for r in received(answers, "todos", "created")]
    assert sorted(created) == sorted(todos)
    # later changes, paged too
    more = {make_todo(admin, mine, f"m{i}") for i in range(7)}
    drain(feed)
    answers = device.sync(limit=3)
    assert sorted(r["id"] for r in received(answers, "todos", "created")) == sorted(more)


def test_lost_answer_is_answered_again(api, admin, feed):
    alice = new_user()
    mine = make_list(admin, alice)
    device = SyncClient(api, alice)
    device.sync()
    first = make_todo(admin, mine, "first")
    drain(feed)
    lost = device.pull_once()  # the answer never reaches the device: its cursor stays
    assert ids([lost], "todos", "created") == {first}
    again = device.pull_once()
    assert ids([again], "todos", "created") == {first}
    device.apply(again)
    second = make_todo(admin, mine, "second")
    drain(feed)
    answers = device.sync()
    assert ids(answers, "todos", "created") == {second}
    # a cursor two pulls old is not ours to guess about: reset
    stale = device.log[0]["cursor"]
    answer = device.pull_once(cursor=stale)
    assert answer["reset"] is True and answer["cursor"] is None


def test_cursor_older_than_retention_is_told_to_reset(api, admin, feed):
    alice = new_user()
    mine = make_list(admin, alice)
    drain(feed)
    device = SyncClient(api, alice)
    device.sync()
    make_todo(admin, mine)
    drain(feed)
    admin.execute("delete from sync.changes")
    admin.execute("update sync.feed_state set pruned_seq = seq")
    answer = device.pull_once()
    assert answer["reset"] is True
    device.apply(answer)
    device.sync()
    assert len(device.ids("todos")) == 1


def test_empty_pull_reads_no_synced_table(api, admin, feed):
    alice = new_user()
    make_list(admin, alice)
    drain(feed)
    device = SyncClient(api, alice)
    device.sync()
    cursor = device.cursor
    # If the pull touched a synced table it would fail: the user's role may no longer read them.
    admin.execute("revoke select on public.todos, public.lists, public.list_members from authenticated")
    answer = device.pull_once()
    assert answer["cursor"] == cursor and answer["has_more"] is False
    assert all(not v for c in answer["changes"].values() for v in c.values())


def test_two_devices_of_one_user_and_client_ids_are_bound_to_users(api, admin, feed):
    alice, mallory = new_user(), new_user()
    mine = make_list(admin, alice)
    make_todo(admin, mine)
    drain(feed)
    phone, tablet = SyncClient(api, alice), SyncClient(api, alice)
    phone.sync()
    tablet.sync()
    assert phone.ids("todos") == tablet.ids("todos") and len(phone.ids("todos")) == 1
    thief = SyncClient(api, mallory, client_id=phone.client_id)
    response = thief.http.post("/sync/v1/pull", json={"client_id": phone.client_id, "cursor": phone.cursor})
    assert response.status_code == 403 and response.json()["code"] == "SYNC104"


def test_bad_requests_get_sync_errors(api):
    import httpx

    base = f"{api.url}/sync/v1/pull"
    token = api.user_token(uuid.uuid4())
    cases = [
        ({}, None, 401, "SYNC105"),
        (api.headers(token), b"not json", 400, "SYNC100"),
        (api.headers(token), b'{"cursor": null}', 400, "SYNC103"),
        (api.headers(token), b'{"client_id": "d", "cursor": "garbage!"}', 400, "SYNC101"),
        (api.headers(token), b'{"client_id": "d", "tables": ["nope"]}', 400, "SYNC102"),
        (api.headers(token), b'{"client_id": "d", "limit": 0}', 400, "SYNC100"),
    ]
    for headers, body, status, code in cases:
        response = httpx.post(base, headers=headers, content=body or b"{}")
        assert (response.status_code, response.json()["code"]) == (status, code), response.text


def test_policy_dependencies_are_found_through_sql_functions(database):
    import asyncio

    import asyncpg

    from tuskbase.sync import catalog

    async def load():
        conn = await asyncpg.connect(database)
        try:
            return await catalog.load(conn)
        finally:
            await conn.close()

    loaded = asyncio.run(load())
    ids = {t.name: t.id for t in loaded.tables.values()}
    todos = loaded.by_name["todos"]
    assert todos.deps == frozenset({ids["lists"], ids["list_members"]})
    assert {"owner_id", "user_id", "list_id"} <= todos.dep_columns and "title" not in todos.dep_columns


def test_a_change_to_a_synced_table_alone_is_pulled_incrementally(api, admin, feed):
    """Only the changed keys are read: the other tables (and a re-diff) would need rights the role lost."""
    alice = new_user()
    mine = make_list(admin, alice)
    drain(feed)
    device = SyncClient(api, alice)
    device.sync()
    admin.execute("update public.lists set title = 'renamed' where id = %s", (mine,))  # not a policy input
    item = make_todo(admin, mine, "new")
    drain(feed)
    admin.execute("revoke select on public.list_members from authenticated")
    answers = device.sync()
    assert ids(answers, "todos", "created") == {item}
    assert [r["title"] for r in received(answers, "lists", "updated")] == ["renamed"]


def test_truncate_and_policy_change_are_exact(api, admin, feed):
    import time

    alice, bob = new_user(), new_user()
    mine = make_list(admin, alice)
    items = {make_todo(admin, mine, f"t{i}") for i in range(3)}
    drain(feed)
    bobs = SyncClient(api, bob)
    bobs.sync()
    assert bobs.ids("todos") == set()
    # A policy change moves rows into view without any row changing.
    admin.execute("create policy todos_public on public.todos for select to authenticated using (title like 't%')")
    time.sleep(1.1)  # the API's catalog cache
    answers = bobs.sync()
    assert ids(answers, "todos", "created") == items
    admin.execute("truncate public.todos cascade")
    drain(feed)
    answers = bobs.sync()
    assert set(received(answers, "todos", "deleted")) == items
    assert bobs.ids("todos") == set()


def test_metrics_export_slot_lag_and_feed_progress(fast_metrics, api, admin, feed):
    import time

    import httpx

    make_list(admin, new_user())
    drain(feed)
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(f"{api.url}/metrics").text
        if "tuskbase_sync_feed_seq 1.0" in text:
            break
        time.sleep(0.1)
    assert "tuskbase_sync_feed_seq 1.0" in text
    assert "tuskbase_sync_slot_lag_bytes" in text and "tuskbase_sync_feed_changes_per_second" in text


def test_changes_made_while_the_slot_was_gone_are_found_by_a_re_diff(api, admin, feed, database, settings):
    from tuskbase.sync.feed import Feed

    alice = new_user()
    mine = make_list(admin, alice)
    drain(feed)
    device = SyncClient(api, alice)
    device.sync()
    slot = feed.slot
    feed.close()
    admin.execute("select pg_drop_replication_slot(%s)", (slot,))
    lost = make_todo(admin, mine, "written while no slot existed")  # never in the change log
    replacement = Feed(database, settings)
    replacement.connect()
    try:
        assert replacement.try_lead()
        assert admin.execute("select epoch from sync.feed_state").fetchone()[0] == 2
        answers = device.sync()
    finally:
        replacement.close()
    assert ids(answers, "todos", "created") == {lost}


def test_new_claims_re_diff_and_held_rows_leave_in_bounded_pages(api, admin, feed):
    alice, bob = new_user(), new_user()
    shared = make_list(admin, alice)
    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (shared, bob))
    items = {make_todo(admin, shared, f"t{i}") for i in range(8)}
    drain(feed)
    phone = SyncClient(api, bob)
    phone.sync(limit=3)
    assert phone.ids("todos") == items
    admin.execute("delete from public.list_members where user_id = %s", (bob,))
    drain(feed)
    answers = phone.sync(limit=3)
    assert all(sum(len(v) for c in a["changes"].values() for v in c.values()) <= 3 for a in answers)
    assert sorted(received(answers, "todos", "deleted")) == sorted(items)
    # a token with other claims (say, a new app_metadata) may change what policies allow: exact re-diff
    phone.token = api.user_token(bob, app_metadata={"plan": "pro"})
    phone.http.headers["Authorization"] = f"Bearer {phone.token}"
    answers = phone.sync()
    assert all(not v for a in answers for c in a["changes"].values() for v in c.values())


def test_anonymous_callers_get_only_tables_their_role_may_read(api, admin, feed):
    import httpx

    make_todo(admin, make_list(admin, new_user()), "private")
    drain(feed)
    headers = {"apikey": api.anon_key}
    answer = httpx.post(f"{api.url}/sync/v1/pull", headers=headers, json={"client_id": "kiosk"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["changes"] == {}
    refused = httpx.post(f"{api.url}/sync/v1/pull", headers=headers, json={"client_id": "kiosk", "tables": ["todos"]})
    assert (refused.status_code, refused.json()["code"]) == (403, "SYNC106")


def test_asking_for_more_tables_later_brings_their_existing_rows(api, admin, feed):
    alice = new_user()
    mine = make_list(admin, alice)
    item = make_todo(admin, mine)
    drain(feed)
    device = SyncClient(api, alice)
    first = device.pull_once(tables=["todos"])
    device.apply(first)
    assert device.ids("todos") == {item} and device.ids("lists") == set()
    answers = device.sync()  # now every table
    assert ids(answers, "lists", "created") == {mine}
    assert received(answers, "todos", "created") == [] and received(answers, "todos", "updated") == []


def test_a_row_changed_during_a_paged_first_sync_arrives_once_then_as_an_update(api, admin, feed, monkeypatch):
    from tuskbase.sync import pull as pull_module

    tries = []
    transaction = pull_module._transaction

    async def spy(*args, exact=False):
        tries.append(exact)
        return await transaction(*args, exact=exact)

    monkeypatch.setattr(pull_module, "_transaction", spy)
    alice = new_user()
    mine = make_list(admin, alice)
    todos = {make_todo(admin, mine, f"t{i}") for i in range(12)}
    drain(feed)
    device = SyncClient(api, alice)
    first = device.pull_once(limit=5)
    device.apply(first)
    moved = first["changes"]["todos"]["created"][0]["id"]
    # The new version lands after the rows still to be sent, and more rows after it: a later page of the same
    # first diff meets it again, and the change log brings it once more in the last page.
    admin.execute("update public.todos set title = 'moved' where id = %s", (moved,))
    todos |= {make_todo(admin, mine, f"u{i}") for i in range(8)}
    drain(feed)
    answers = device.sync(limit=5)
    assert device.rows["todos"][moved]["title"] == "moved" and device.ids("todos") == todos
    assert [r["id"] for r in received(answers, "todos", "updated")] == [moved]
    assert moved not in ids(answers, "todos", "created")
    created = [r["id"] for r in received([first, *answers], "todos", "created")]
    assert sorted(created) == sorted(todos)  # every other row exactly once
    assert True in tries  # one page was answered again, compared with the view record


def test_a_row_met_twice_in_one_answer_is_sent_once_as_its_last_version(api, admin, feed):
    alice = new_user()
    mine = make_list(admin, alice)
    todos = {make_todo(admin, mine, f"t{i}") for i in range(6)}
    drain(feed)
    device = SyncClient(api, alice)
    first = device.pull_once(limit=4)
    device.apply(first)
    moved = first["changes"]["todos"]["created"][0]["id"]
    admin.execute("update public.todos set title = 'moved' where id = %s", (moved,))
    drain(feed)
    # One answer finishes the diff (meeting the new version in the heap) and reads the change log (meeting it
    # again): one record of it, an update.
    answer = device.pull_once(limit=100)
    device.apply(answer)
    assert [r["id"] for r in answer["changes"]["todos"]["updated"]] == [moved]
    assert moved not in {r["id"] for r in answer["changes"]["todos"]["created"]}
    assert device.rows["todos"][moved]["title"] == "moved" and device.ids("todos") == todos
    assert device.pull_once()["changes"]["todos"] == {"created": [], "updated": [], "deleted": []}


def test_pass_a_sizes_block_ranges_by_the_density_seen_and_at_most_doubles_them():
    from tuskbase.sync.diff import FIRST_STEP, MAX_STEP, _learn, _step

    dense: dict = {}
    assert _step(dense, 10_000) == FIRST_STEP
    _learn(dense, 5184, 64)  # 81 visible rows per block
    assert _step(dense, 4816) == 60  # the room left, not a whole page's worth more
    assert _step(dense, 10_000) == 124
    sparse: dict = {}
    _learn(sparse, 1, 64)  # one row in 64 blocks says little about the next blocks
    assert _step(sparse, 10_000) == 128
    empty: dict = {}
    _learn(empty, 0, 64)
    assert _step(empty, 10) == 128
    _learn(empty, 0, 128)
    assert _step(empty, 10) == 384
    assert _step({"b": MAX_STEP, "r": 0}, 10) == MAX_STEP
