"""Pull: what decides visibility (a policy, the token's claims, the feed's epoch) changes between pages of a diff.

A diff's pages are read under the rules of the moment; a change between two pages would leave the blocks (and
tables) already walked judged by the old rules, and nothing in the change log points back at them. A pull that
sees another fingerprint or epoch than its cursor's starts the diff over; a logged change to a table a policy
reads, made while the diff ran, makes the pull that ends the diff ask for a re-diff instead of going incremental.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.sync.conftest import SyncClient, _key, drain, new_user
from tests.sync.test_sync_pull import make_list, make_todo

ALICE = new_user()
LIMIT = 10
EMPTY = {"created": [], "updated": [], "deleted": []}
PRO_POLICY = ("create policy todos_pro on public.todos for select to authenticated "
              "using (auth.jwt() -> 'app_metadata' ->> 'plan' = 'pro' and title like 'b%')")


@pytest.fixture
def fresh_catalog(monkeypatch):
    """Every pull reloads the catalog, as pulls seconds apart do: a policy change is seen by the next page."""
    from tuskbase.sync import catalog

    monkeypatch.setattr(catalog, "TTL", 0.0)


def interleaved(admin) -> tuple[set[str], set[str]]:
    """Alice's todos and bob's, alternating in the heap: wherever a page of alice's first sync stops, bob's rows
    lie in the blocks already walked. Every third of alice's is titled '...-x'. Returns (alice's, bob's)."""
    mine, theirs = make_list(admin, ALICE, "alice's"), make_list(admin, new_user(), "bob's")
    alices, bobs = set(), set()
    for i in range(30):
        bobs.add(make_todo(admin, theirs, f"b{i}"))
        alices.add(make_todo(admin, mine, f"t{i}-x" if i % 3 == 0 else f"t{i}"))
    return alices, bobs


def visible(admin: psycopg.Connection, claims: dict) -> dict[str, dict]:
    """Every synced table's rows as `claims` may see them now (RLS as the database applies it), by key."""
    with admin.transaction():
        admin.execute("select set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)",
                      (json.dumps(claims),))
        tables = {}
        for table in ("lists", "list_members", "todos"):
            rows = [row for (row,) in admin.execute(f"select to_jsonb(t) from public.{table} t")]
            tables[table] = {_key(table, row): row for row in rows}
        admin.execute("reset role")
    return tables


def first_page(api, feed, token: str | None = None) -> tuple[SyncClient, dict]:
    drain(feed)
    device = SyncClient(api, ALICE)
    if token is not None:
        use_token(device, token)
    first = device.pull_once(limit=LIMIT)
    device.apply(first)
    assert first["has_more"] and first["changes"]["todos"]["created"]  # stopped inside the todos
    return device, first


def use_token(device: SyncClient, token: str) -> None:
    device.token = token
    device.http.headers.update(device.api.headers(token))


def assert_holds_what_it_may_see(admin, device: SyncClient, claims: dict) -> None:
    """Pull until has_more is false, and once more: the client holds exactly the rows it may see now, as they
    are now, and nothing is left to send."""
    device.sync(limit=LIMIT)
    created = [_key(table, row) for a in device.log for table, c in a["changes"].items() for row in c["created"]]
    assert len(created) == len(set(created))  # a diff started over sends nothing the client holds again
    last = device.pull_once()
    device.apply(last)
    now = visible(admin, claims)
    for table, rows in now.items():
        assert device.rows.get(table, {}) == rows, table
    assert last["changes"]["todos"] == EMPTY and not last["has_more"]


def test_a_policy_widened_between_pages_of_a_first_sync_brings_the_rows_already_walked(
        fresh_catalog, api, admin, feed):
    alices, bobs = interleaved(admin)
    device, _first = first_page(api, feed)
    admin.execute("create policy todos_b on public.todos for select to authenticated using (title like 'b%')")
    assert_holds_what_it_may_see(admin, device, {"sub": ALICE, "role": "authenticated"})
    assert device.ids("todos") == alices | bobs


def test_a_policy_narrowed_between_pages_of_a_first_sync_takes_back_the_rows_already_sent(
        fresh_catalog, api, admin, feed):
    interleaved(admin)
    device, first = first_page(api, feed)
    sent = {row["title"] for row in first["changes"]["todos"]["created"]}
    assert any(title.endswith("-x") for title in sent)  # the first page sent rows the new rules hide
    admin.execute("create policy todos_no_x on public.todos as restrictive for select to authenticated "
                  "using (title not like '%-x')")
    assert_holds_what_it_may_see(admin, device, {"sub": ALICE, "role": "authenticated"})
    assert {row["title"] for row in device.rows["todos"].values()} == {
        f"t{i}" for i in range(30) if i % 3}


@pytest.mark.parametrize("before, after", [(None, "pro"), ("pro", None)], ids=["widened", "narrowed"])
def test_claims_changed_between_pages_of_a_diff_are_applied_to_every_row(
        fresh_catalog, api, admin, feed, before, after):
    """A new token with other claims mid-diff: first sync under one plan, the rest of it under another."""
    alices, bobs = interleaved(admin)
    admin.execute(PRO_POLICY)

    def claims(plan: str | None) -> dict:
        return {"app_metadata": {"plan": plan}} if plan else {}

    device, _first = first_page(api, feed, api.user_token(ALICE, **claims(before)))
    use_token(device, api.user_token(ALICE, **claims(after)))
    assert_holds_what_it_may_see(admin, device, {"sub": ALICE, "role": "authenticated", **claims(after)})
    assert device.ids("todos") == (alices | bobs if after else alices)


def test_claims_changed_between_pages_of_a_re_diff_are_applied_to_every_row(fresh_catalog, api, admin, feed):
    """Not a first sync: the client held the lists only, then asks for every table (a re-diff, which sends the
    todos as it walks them), and its token gains the plan in the middle of that re-diff."""
    alices, bobs = interleaved(admin)
    admin.execute(PRO_POLICY)
    drain(feed)
    device = SyncClient(api, ALICE)
    device.apply(device.pull_once(tables=["lists"]))
    assert device.ids("lists") and device.cursor is not None
    first = device.pull_once(limit=LIMIT)
    device.apply(first)
    assert first["has_more"] and first["changes"]["todos"]["created"]
    use_token(device, api.user_token(ALICE, app_metadata={"plan": "pro"}))
    assert_holds_what_it_may_see(admin, device, {"sub": ALICE, "role": "authenticated",
                                                 "app_metadata": {"plan": "pro"}})
    assert device.ids("todos") == alices | bobs


def test_a_new_feed_epoch_between_pages_of_a_first_sync_re_diffs(fresh_catalog, api, admin, feed, database,
                                                                 settings):
    """The slot is lost and created again mid-diff: a row already sent is deleted while no slot exists (never
    in the change log); the first sync skips pass B, so only a diff begun under the new epoch finds it."""
    from tuskbase.sync.feed import Feed

    alices, _bobs = interleaved(admin)
    device, first = first_page(api, feed)
    gone = first["changes"]["todos"]["created"][0]["id"]
    slot = feed.slot
    feed.close()
    admin.execute("select pg_drop_replication_slot(%s)", (slot,))
    admin.execute("delete from public.todos where id = %s", (gone,))
    replacement = Feed(database, settings)
    replacement.connect()
    try:
        assert replacement.try_lead()
        assert admin.execute("select epoch from sync.feed_state").fetchone()[0] == 2
        assert_holds_what_it_may_see(admin, device, {"sub": ALICE, "role": "authenticated"})
    finally:
        replacement.close()
    assert device.ids("todos") == alices - {gone}


def test_a_policy_input_table_changed_between_pages_re_diffs_after_the_diff(api, admin, feed):
    """Alice joins bob's list mid-diff: a row of list_members, logged past the diff's target seq. The pull that
    ends the diff used to go on incrementally past it (bringing only the membership row, not bob's list nor his
    todos in the blocks already walked); it now leaves that stretch of the log to a re-diff."""
    alices, bobs = interleaved(admin)
    device, _first = first_page(api, feed)
    theirs = admin.execute("select id from public.lists where title = %s", ("bob's",)).fetchone()[0]
    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (theirs, ALICE))
    drain(feed)
    assert_holds_what_it_may_see(admin, device, {"sub": ALICE, "role": "authenticated"})
    assert device.ids("todos") == alices | bobs


def test_other_tables_asked_for_between_pages_of_a_first_sync_are_diffed_too(api, admin, feed):
    """The first sync began with the todos only; the next pages ask for every table (another fingerprint)."""
    alices, _bobs = interleaved(admin)
    drain(feed)
    device = SyncClient(api, ALICE)
    first = device.pull_once(limit=LIMIT, tables=["todos"])
    device.apply(first)
    assert first["has_more"] and list(first["changes"]) == ["todos"]
    assert_holds_what_it_may_see(admin, device, {"sub": ALICE, "role": "authenticated"})
    assert device.ids("todos") == alices and len(device.ids("lists")) == 1
