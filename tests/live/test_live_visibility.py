"""Live channel at scale: a write pokes the users who may see it, once per batch, however many strangers are
connected, and a poke tells nothing of how much the rest of the database changed."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import httpx
import pytest

from tests.live.conftest import POSITIONS, listen, live_url, position, refused
from tests.live.test_live_pokes import make_list, next_poke, persisted, write
from tuskbase.sync.catalog import Catalog, Table
from tuskbase.sync.live import Positions
from tuskbase.sync.live_visibility import VisibilityCache, policy_columns, representatives_sql

STRANGERS = 60
ROWS = 15


@pytest.fixture
def settings(settings):
    # 15 changed keys x 63 users is far over this bound; one check per user (the 15 rows are alike for the
    # todos policy: same list) is under it. Before checks were grouped, such a write poked everyone.
    return settings.replace(sync_live_check_max=200)


def insert_todos(list_id: uuid.UUID, rows: int = ROWS) -> str:
    return f"insert into public.todos (list_id, title) select '{list_id}', 't' || i from generate_series(1, {rows}) i"


async def connect_all(api, users: list[uuid.UUID], names: list[str]) -> list:
    return await asyncio.gather(*(listen(name, live_url(api, api.user_token(user)))
                                  for user, name in zip(users, names, strict=True)))


def test_a_multi_row_insert_among_many_strangers_pokes_only_those_who_may_see_it(api, admin, running_feed):
    owner, member, viewer = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    strangers = [uuid.uuid4() for _ in range(STRANGERS)]
    shared = make_list(admin, owner, "shared")
    for user in (member, viewer):
        admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (shared, user))
    own = [make_list(admin, user, "own") for user in strangers]
    start = persisted(admin, 3 + STRANGERS)

    async def scenario() -> None:
        seeing = await connect_all(api, [owner, member, viewer], ["owner", "member", "viewer"])
        others = await connect_all(api, strangers, [f"stranger {i}" for i in range(STRANGERS)])
        try:
            # The setup's changes may still be on their way to the hub (one batch of 63 lists: a mass change, for
            # everyone); count from a barrier that only stranger 0 may see.
            await write(admin, "update public.lists set title = 'start' where id = %s", own[0])
            _, base = await next_poke(others[0], start)
            last = base

            def pokes(listener) -> list[int]:
                return [seq for _, seq in listener.pokes() if seq > base]

            for round_ in range(3):  # the first round asks RLS, the others are answered from what it said
                await write(admin, insert_todos(shared))
                seqs = {(await next_poke(listener, last))[1] for listener in seeing}
                assert len(seqs) == 1, seqs
                poked = seqs.pop()
                # Barrier: a change only stranger 0 may see; once it is poked, every earlier batch was handled.
                await write(admin, "update public.lists set title = %s where id = %s", f"r{round_}", own[0])
                _, barrier = await next_poke(others[0], poked)
                assert barrier > poked
                last = barrier
            for listener in seeing:
                assert len(pokes(listener)) == 3, (listener.name, listener.pokes())
            assert len(pokes(others[0])) == 3
            assert not [o.name for o in others[1:] if pokes(o)], "a stranger was poked"
            # An update of many rows is checked the same way.
            await write(admin, "update public.todos set done = true where id in "
                               "(select id from public.todos where list_id = %s order by id limit %s)", shared, ROWS)
            _, updated = await next_poke(seeing[1], last)
            await write(admin, "update public.lists set title = 'end' where id = %s", own[0])
            await next_poke(others[0], updated)
            assert not [o.name for o in others[1:] if pokes(o)], "a stranger was poked for an update"
        finally:
            await asyncio.gather(*(listener.close() for listener in seeing + others))

    asyncio.run(scenario())


def test_each_write_pokes_its_audience_exactly_once_as_the_audience_changes(api, admin, running_feed):
    """What the hub remembers of RLS's answers must follow a membership granted and revoked."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alices = make_list(admin, alice, "alice's")
    bobs = make_list(admin, bob, "bob's")
    start = persisted(admin, 2)

    async def scenario() -> None:
        alice_phone, bob_phone = await connect_all(api, [alice, bob], ["alice", "bob"])
        try:
            # Bob may not see Alice's list: her writes poke her, once each, and not him.
            marks = []
            last = start
            for _ in range(3):
                await write(admin, insert_todos(alices))
                _, last = await next_poke(alice_phone, last)
                marks.append(last)
            await write(admin, "update public.lists set title = 'b1' where id = %s", bobs)
            _, barrier = await next_poke(bob_phone, last)
            assert [seq for _, seq in bob_phone.pokes()] == [barrier]
            assert [seq for _, seq in alice_phone.pokes()] == marks

            # Alice shares the list: from then on each of her writes pokes Bob too, once.
            await write(admin, "insert into public.list_members (list_id, user_id) values (%s, %s)", alices, bob)
            _, granted = await next_poke(bob_phone, barrier)
            for _ in range(3):
                await write(admin, insert_todos(alices))
                _, seq = await next_poke(bob_phone, granted)
                assert (await next_poke(alice_phone, granted))[1] == seq
                granted = seq
            assert len([s for _, s in bob_phone.pokes() if s > barrier]) == 4

            # She revokes it: her next writes poke only her again.
            await write(admin, "delete from public.list_members where list_id = %s and user_id = %s", alices, bob)
            after = []
            for _ in range(2):
                await write(admin, insert_todos(alices))
                after.append((await next_poke(alice_phone, max([granted, *after])))[1])
            await write(admin, "update public.lists set title = 'b2' where id = %s", bobs)
            _, end = await next_poke(bob_phone, max(after))
            assert [s for _, s in bob_phone.pokes() if s > granted] == [end], "Bob was poked after the revoke"
        finally:
            await alice_phone.close()
            await bob_phone.close()

    asyncio.run(scenario())


def test_a_grant_made_while_nobody_is_connected_is_not_forgotten(api, admin, running_feed):
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alices = make_list(admin, alice, "alice's")
    start = persisted(admin, 1)

    async def scenario() -> None:
        alice_phone, bob_phone = await connect_all(api, [alice, bob], ["alice", "bob"])
        await write(admin, insert_todos(alices))  # the hub learns that Bob may not see Alice's list
        _, first = await next_poke(alice_phone, start)
        await alice_phone.close()
        await bob_phone.close()
        await asyncio.sleep(0.3)
        # With nobody connected, Alice shares the list (from another device, say).
        await write(admin, "insert into public.list_members (list_id, user_id) values (%s, %s)", alices, bob)
        persisted(admin, 2 + ROWS)
        await asyncio.sleep(0.5)  # the hub has handled that batch, with nobody to poke
        bob_again = await listen("bob again", live_url(api, api.user_token(bob)))
        await write(admin, insert_todos(alices))
        await next_poke(bob_again, first)
        await bob_again.close()

    asyncio.run(scenario())


def test_pokes_carry_no_global_counter(api, admin, running_feed):
    alice = uuid.uuid4()
    alices = make_list(admin, alice, "alice's")
    others = [make_list(admin, uuid.uuid4(), "other") for _ in range(5)]
    persisted(admin, 6)

    async def scenario() -> None:
        phone = await listen("alice", live_url(api, api.user_token(alice)))
        # Writes Alice may not see, then one she may.
        for i in range(30):
            await write(admin, "update public.lists set title = %s where id = %s", f"t{i}", others[i % 5])
        total = persisted(admin, 36)
        await write(admin, insert_todos(alices, 1))
        _, poked = await next_poke(phone, 0)
        assert poked > total
        for _, message in phone.messages:
            assert set(message) == {"type", "seq"}, message
            assert re.fullmatch(r"[A-Za-z0-9_-]{22}", message["seq"]), message
            assert not re.search(r"\d{2,}", json.dumps(message).replace(message["seq"], "")), message
        # The position is sealed under the server's key: a client can neither forge nor shift one.
        shifted = Positions("another-secret-another-secret-another-secret").seal(poked)
        sealed = POSITIONS.seal(poked)
        altered = ("B" if sealed[0] == "A" else "A") + sealed[1:]  # the last character also holds padding bits
        bad = [str(poked), shifted, altered, "!" * 22, "%20" + sealed[3:]]
        for seq in bad:
            messages, code = await refused(live_url(api, api.user_token(alice)) + f"&seq={seq}")
            assert code == 4400 and messages[0]["code"] == "bad_request", (seq, messages)
        again = await listen("alice again", live_url(api, api.user_token(alice), seq=total))
        _, caught_up = await next_poke(again, 0)
        assert caught_up == poked
        await again.close()
        await phone.close()

        # Server-Sent Events: the event ids are the same positions.
        async with httpx.AsyncClient(timeout=10) as client, client.stream(
                "GET", api.url + "/sync/v1/live", headers=api.headers(api.user_token(alice))) as response:
            lines = response.aiter_lines()
            head = [await anext(lines) for _ in range(3)]
        assert head[0].startswith("id: ") and re.fullmatch(r"id: [A-Za-z0-9_-]{22}", head[0]), head
        assert position({"seq": head[0][4:]}) >= poked

    asyncio.run(scenario())


def _table(table_id: int, name: str, columns: list[str], policies: list[str], deps: frozenset[int] | None) -> Table:
    return Table(id=table_id, relid=1000 + table_id, schema="public", name=name, served=True, conflict="lww",
                 resolver=None, columns=dict.fromkeys(columns, "text"), pk=["id"], policies=policies, rls=True,
                 deps=deps)


def test_rows_are_grouped_by_the_columns_the_policies_read():
    todos = _table(3, "todos", ["id", "list_id", "title"], ["is_list_member(list_id)"], frozenset({1, 2}))
    assert policy_columns(todos) == ["list_id"]
    lists = _table(1, "lists", ["id", "owner_id", "title"],
                   ["((owner_id = (SELECT auth.uid() AS uid)) OR is_list_member(id))"], frozenset({1, 2}))
    assert policy_columns(lists) == ["id", "owner_id"]
    # A subquery's own columns that share a name only make groups finer; a whole row or a system column makes
    # every row its own group.
    assert policy_columns(_table(4, "notes", ["id", "owner"], [
        "(EXISTS (SELECT 1 FROM shares s WHERE s.id = notes.id AND s.owner = auth.uid()))"], None)) == ["id", "owner"]
    assert policy_columns(_table(5, "notes", ["id"], ["check_row(notes)"], None)) is None
    assert policy_columns(_table(6, "notes", ["id"], ["(ctid IS NOT NULL)"], None)) is None
    assert policy_columns(_table(7, "notes", ["id"], ["(SELECT count(*) FROM (SELECT s.* FROM s) x) > 0"],
                                 None)) is None
    assert 'md5(jsonb_build_array(t."list_id")::text) as g' in representatives_sql(todos)


def test_answers_are_dropped_when_a_table_the_policies_read_changes():
    todos = _table(3, "todos", ["id", "list_id"], ["is_list_member(list_id)"], frozenset({1, 2}))
    opaque = _table(4, "notes", ["id"], ["f(id)"], None)  # dependencies unknown: never kept
    catalog = Catalog({3: todos, 4: opaque}, {}, "fingerprint-1")
    cache = VisibilityCache(ttl=60)
    cache.changed(catalog, set())
    generation = cache.generation(3)
    cache.store(3, generation, "g", ["alice", "bob"], {"alice"})
    cache.store(4, cache.generation(4), "g", ["alice"], {"alice"})
    assert cache.lookup(3, "g", ["alice", "bob", "carol"]) == ({"alice"}, ["carol"])
    assert cache.lookup(4, "g", ["alice"]) == (set(), ["alice"])
    cache.changed(catalog, {3})  # the todos themselves: not an input of their policy
    assert cache.lookup(3, "g", ["bob"]) == (set(), [])
    cache.forget_user("bob")  # a new token
    assert cache.lookup(3, "g", ["alice", "bob"]) == ({"alice"}, ["bob"])
    cache.changed(catalog, {2})  # a membership changed
    assert cache.lookup(3, "g", ["alice"]) == (set(), ["alice"])
    # An answer computed before the drop is not kept after it.
    cache.store(3, generation, "g", ["alice"], {"alice"})
    assert cache.lookup(3, "g", ["alice"]) == (set(), ["alice"])
    cache.store(3, cache.generation(3), "g", ["alice"], set())
    assert cache.lookup(3, "g", ["alice"]) == (set(), [])
    cache.changed(Catalog({3: todos}, {}, "fingerprint-2"), set())  # a policy or function changed
    assert cache.lookup(3, "g", ["alice"]) == (set(), ["alice"])
