"""Pull: a diff paged through a table that is rewritten (VACUUM FULL, CLUSTER, a rewriting ALTER) between pages.

Pass A resumes by heap position; a rewrite gives every row a new one and writes nothing to the change log, so a
diff that resumed blindly would skip rows (or meet rows again) and nothing would ever repair it.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.sync.conftest import SyncClient, drain, new_user, received
from tests.sync.test_sync_pull import make_list, make_todo

ALICE = new_user()
LIMIT = 10
EMPTY = {"created": [], "updated": [], "deleted": []}


@pytest.fixture
def fresh_catalog(monkeypatch):
    """Every pull reloads the catalog, as pulls seconds apart do: the rewrite's new catalog fingerprint is seen
    while the diff runs, so no later re-diff (after a stale cached fingerprint) hides a row the diff skipped."""
    from tuskbase.sync import catalog

    monkeypatch.setattr(catalog, "TTL", 0.0)


def bobs_rows_then_alices(admin, count: int = 30) -> set[str]:
    """Bob's todos in the first heap slots, then alice's: once bob's are deleted, a rewrite packs alice's rows
    into the slots before the position a first page stopped at."""
    theirs = make_list(admin, new_user(), "bob's")
    for i in range(20):
        make_todo(admin, theirs, f"b{i}")
    mine = make_list(admin, ALICE, "alice's")
    return {make_todo(admin, mine, f"t{i}") for i in range(count)}


def first_page(api, feed) -> tuple[SyncClient, dict]:
    drain(feed)
    device = SyncClient(api, ALICE)
    first = device.pull_once(limit=LIMIT)
    device.apply(first)
    assert first["has_more"] and first["changes"]["todos"]["created"]
    return device, first


def assert_synced_once(admin, device: SyncClient, answers: list[dict], todos: set[str]) -> list[str]:
    """The client holds exactly the visible rows, as they are now; each was created once. Returns the ids sent
    as updates (a rewrite that gave rows a new version re-sends them: the client applies it as any update)."""
    assert device.ids("todos") == todos
    created = [r["id"] for r in received(answers, "todos", "created")]
    assert sorted(created) == sorted(todos)  # each once: no row in the created lists of two pages
    updated = [r["id"] for r in received(answers, "todos", "updated")]
    assert len(updated) == len(set(updated)) and set(updated) <= set(created)
    now = {str(row["id"]): row for (row,) in admin.execute(
        "select to_jsonb(t) from public.todos t where id = any(%s::uuid[])", (list(todos),))}
    assert device.rows["todos"] == now
    assert device.pull_once()["changes"]["todos"] == EMPTY  # and nothing is left to repair
    return updated


@pytest.mark.parametrize("rewrite", ["vacuum full public.todos",
                                     "alter table public.todos alter column position type bigint"])
def test_a_table_rewritten_between_pages_of_a_first_sync_is_walked_again(fresh_catalog, api, admin, feed, rewrite):
    todos = bobs_rows_then_alices(admin)
    device, first = first_page(api, feed)
    admin.execute("delete from public.todos where title like 'b%'")
    admin.execute(rewrite)
    drain(feed)
    answers = [first, *device.sync(limit=LIMIT)]
    updated = assert_synced_once(admin, device, answers, todos)
    if rewrite.startswith("vacuum"):
        assert updated == []  # VACUUM FULL keeps each row's xmin: rows met again compare equal, nothing re-sent
    else:
        # The ALTER wrote every row anew (a new xmin): the rows of the first page come again, as updates.
        assert set(updated) == {r["id"] for r in first["changes"]["todos"]["created"]}


def test_a_table_clustered_between_pages_of_a_first_sync_is_walked_again(fresh_catalog, api, admin, feed):
    mine = make_list(admin, ALICE)
    todos = {make_todo(admin, mine, f"t{i}") for i in range(40)}
    device, first = first_page(api, feed)
    admin.execute("cluster public.todos using todos_pkey")  # random uuids: the rows come in another order
    drain(feed)
    answers = [first, *device.sync(limit=LIMIT)]
    assert assert_synced_once(admin, device, answers, todos) == []


def test_a_cursor_without_the_tables_storage_walks_the_table_again(fresh_catalog, api, admin, feed):
    """A cursor from before the storage was recorded: a rewrite may have happened since its page, so pass A of
    the table starts over (rows already sent compare equal and are not sent again)."""
    todos = bobs_rows_then_alices(admin)
    device, first = first_page(api, feed)
    raw = json.loads(base64.urlsafe_b64decode(device.cursor + "=" * (-len(device.cursor) % 4)))
    assert raw["d"]["ph"] == "a" and raw["d"]["k"]
    raw["d"].pop("n", None)
    device.cursor = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")
    admin.execute("delete from public.todos where title like 'b%'")
    admin.execute("vacuum full public.todos")
    drain(feed)
    answers = [first, *device.sync(limit=LIMIT)]
    assert assert_synced_once(admin, device, answers, todos) == []


def test_a_re_diff_rewritten_between_pages_sends_and_deletes_what_it_must(fresh_catalog, api, admin, feed):
    """Not a first sync: the client holds rows, changes happen, a claims change re-diffs (the diff alone brings
    the changes before it), and the table is rewritten between two of its pages."""
    todos = bobs_rows_then_alices(admin)
    drain(feed)
    device = SyncClient(api, ALICE)
    device.sync()
    ordered = sorted(todos)
    gone, renamed = ordered[:5], ordered[5:15]
    admin.execute("delete from public.todos where id = any(%s::uuid[])", (gone,))
    admin.execute("update public.todos set title = 'renamed' where id = any(%s::uuid[])", (renamed,))
    todos -= set(gone)
    drain(feed)
    device.token = api.user_token(ALICE, app_metadata={"plan": "pro"})  # new claims: a re-diff
    device.http.headers.update(api.headers(device.token))
    first = device.pull_once(limit=LIMIT)
    device.apply(first)
    assert first["has_more"]
    admin.execute("delete from public.todos where title like 'b%'")
    admin.execute("vacuum full public.todos")
    drain(feed)
    answers = [first, *device.sync(limit=LIMIT)]
    assert device.ids("todos") == todos
    assert received(answers, "todos", "created") == []
    assert sorted(r["id"] for r in received(answers, "todos", "updated")) == sorted(renamed)
    assert sorted(received(answers, "todos", "deleted")) == sorted(gone)
    assert {device.rows["todos"][key]["title"] for key in renamed} == {"renamed"}


def test_the_storage_read_locks_the_table_until_the_pull_commits(database):
    """The check is sound only if no rewrite can commit between it and the reads after it: the statement that
    reads the storage takes the same lock as a scan (ACCESS SHARE, which a rewrite's ACCESS EXCLUSIVE waits
    for), held to the end of the transaction, also when the prepared statement is reused."""
    import asyncio

    import asyncpg

    from tuskbase.sync import catalog

    held = ("select count(*) from pg_locks where pid = pg_backend_pid() and mode = 'AccessShareLock' "
            "and relation = 'public.todos'::regclass")

    async def run() -> list[int]:
        conn = await asyncpg.connect(database)
        try:
            todos = (await catalog.load(conn)).by_name["todos"]
            counts = []
            for _ in range(7):  # past the point where a prepared statement gets a generic plan
                async with conn.transaction():
                    blocks, storage = await conn.fetchrow(todos.sql["storage"])
                    assert blocks >= 0 and storage == await conn.fetchval(
                        "select pg_relation_filenode('public.todos')")
                    counts.append(await conn.fetchval(held))
            return counts
        finally:
            await conn.close()

    assert asyncio.run(run()) == [1] * 7
