"""The live channel pokes exactly the users who may see a change, fast, and catches up reconnecting clients."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import httpx

from tests.live.conftest import POSITIONS, listen, live_url, position, refused


async def write(admin, sql: str, *params) -> float:
    """Run one autocommit statement off the event loop; the time its commit returned."""
    await asyncio.to_thread(admin.execute, sql, params)
    return time.perf_counter()


def make_list(admin, owner: uuid.UUID, title: str) -> uuid.UUID:
    return admin.execute("insert into public.lists (owner_id, title) values (%s, %s) returning id",
                         (owner, title)).fetchone()[0]


def persisted(admin, changes: int) -> int:
    """Wait until the feed persisted `changes` changes (this test's database starts with none); its seq."""
    deadline = time.monotonic() + 10
    while (seq := admin.execute("select seq from sync.feed_state").fetchone()[0]) < changes:
        assert time.monotonic() < deadline, f"the feed persisted {seq} of {changes} changes"
        time.sleep(0.01)
    return seq


async def next_poke(listener, after: int, timeout: float = 5.0) -> tuple[float, int]:
    at, message = await listener.wait_for(lambda m: m["type"] == "poke" and position(m) > after, timeout)
    return at, position(message)


def test_a_write_pokes_the_users_who_may_see_it_within_100ms_and_not_the_others(api, admin, running_feed):
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alice_list = make_list(admin, alice, "alice's")
    bob_list = make_list(admin, bob, "bob's")
    start = persisted(admin, 2)

    async def scenario() -> None:
        phone = await listen("alice phone", live_url(api, api.user_token(alice)))
        tablet = await listen("alice tablet", live_url(api, api.user_token(alice)))
        bob_phone = await listen("bob phone", live_url(api, api.user_token(bob)))
        try:
            latencies: list[float] = []
            alice_seqs: set[int] = set()
            bob_seqs: set[int] = set()
            last = start
            for round_ in range(6):
                committed = await write(admin, "insert into public.todos (list_id, title) values (%s, %s)",
                                        alice_list, f"alice {round_}")
                at, seq = await next_poke(phone, last)
                tablet_at, tablet_seq = await next_poke(tablet, last)
                assert tablet_seq == seq
                latencies += [at - committed, tablet_at - committed]
                alice_seqs.add(seq)
                last = seq

                committed = await write(admin, "update public.lists set title = %s where id = %s",
                                        f"bob {round_}", bob_list)
                at, seq = await next_poke(bob_phone, last)
                latencies.append(at - committed)
                bob_seqs.add(seq)
                last = seq

            # Alice shares her list with Bob (a policy input): both see the membership row, so both are poked;
            # from then on Bob is poked for her todos too.
            await write(admin, "insert into public.list_members (list_id, user_id) values (%s, %s)",
                        alice_list, bob)
            _, shared = await next_poke(bob_phone, last)
            assert (await next_poke(phone, last))[1] == shared
            assert (await next_poke(tablet, last))[1] == shared
            committed = await write(admin, "insert into public.todos (list_id, title) values (%s, 'for both')",
                                    alice_list)
            bob_at, both = await next_poke(bob_phone, shared)
            assert (await next_poke(phone, shared))[1] == both
            latencies.append(bob_at - committed)

            # Nobody was poked for a change it may not see.
            for listener in (phone, tablet):
                seqs = [seq for _, seq in listener.pokes() if seq > start]
                assert seqs == [*sorted(alice_seqs), shared, both], (listener.name, seqs, bob_seqs)
            assert [seq for _, seq in bob_phone.pokes() if seq > start] == [*sorted(bob_seqs), shared, both]

            print("commit-to-poke latencies (ms):", [round(x * 1000, 1) for x in latencies])
            assert statistics.median(latencies) <= 0.100, latencies
        finally:
            for listener in (phone, tablet, bob_phone):
                await listener.close()

    asyncio.run(scenario())


def test_reconnecting_with_a_seq_catches_up_only_on_what_the_user_may_see(api, admin, running_feed):
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alice_list = make_list(admin, alice, "alice's")
    bob_list = make_list(admin, bob, "bob's")
    start = persisted(admin, 2)

    async def scenario() -> None:
        alice_phone = await listen("alice", live_url(api, api.user_token(alice), seq=start))

        # While Bob is offline, a change he may not see: coming back with his seq brings no poke for it.
        await write(admin, "insert into public.todos (list_id, title) values (%s, 'private')", alice_list)
        _, hidden = await next_poke(alice_phone, start)
        back = await listen("bob", live_url(api, api.user_token(bob), seq=start))
        await write(admin, "update public.lists set title = 'barrier' where id = %s", bob_list)
        _, barrier = await next_poke(back, start)
        assert barrier > hidden
        assert [seq for _, seq in back.pokes()] == [barrier], "caught up on a change Bob may not see"
        await back.close()

        # While he is offline again, a change he may see: coming back with his seq pokes him at once.
        await write(admin, "update public.lists set title = 'while away' where id = %s", bob_list)
        await write(admin, "insert into public.todos (list_id, title) values (%s, 'sync point')", alice_list)
        _, sync_point = await next_poke(alice_phone, hidden)
        again = await listen("bob again", live_url(api, api.user_token(bob), seq=barrier))
        _, caught_up = await next_poke(again, barrier)
        assert caught_up == sync_point, "the catch-up poke names the feed position reached"
        # Without a seq, a client starts from the current position: nothing to catch up on.
        fresh = await listen("bob, new device", live_url(api, api.user_token(bob)))
        assert fresh.messages[0][1] == {"type": "ready", "seq": POSITIONS.seal(sync_point)}
        for listener in (again, fresh, alice_phone):
            await listener.close()

    asyncio.run(scenario())


def test_rows_leaving_a_users_view_poke_the_devices_that_hold_them(api, admin, running_feed):
    """A delete, or an update that moves a row out of view, is invisible under RLS afterwards: the sync engine's
    client view record (what each device was sent) says who must hear of it."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    shared = make_list(admin, alice, "shared")
    private = make_list(admin, alice, "private")
    todo = admin.execute("insert into public.todos (list_id, title) values (%s, 'milk') returning id",
                         (shared,)).fetchone()[0]
    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (shared, bob))
    start = persisted(admin, 4)
    pulled = httpx.post(api.url + "/sync/v1/pull", headers=api.headers(api.user_token(bob)),
                        json={"client_id": "bob-phone"}, timeout=30).json()
    assert [r["id"] for r in pulled["changes"]["todos"]["created"]] == [str(todo)]

    async def scenario() -> None:
        bob_phone = await listen("bob", live_url(api, api.user_token(bob), seq=start))
        alice_phone = await listen("alice", live_url(api, api.user_token(alice), seq=start))
        # Alice moves the todo to her private list: Bob may no longer see it, but his phone holds it.
        await write(admin, "update public.todos set list_id = %s where id = %s", private, todo)
        _, moved = await next_poke(bob_phone, start)
        assert (await next_poke(alice_phone, start))[1] == moved
        # A change in the private list that Bob never held: only Alice hears of it (barrier below proves it).
        await write(admin, "insert into public.todos (list_id, title) values (%s, 'secret')", private)
        _, secret = await next_poke(alice_phone, moved)
        # Alice removes Bob from the shared list: his phone holds the membership row and the list.
        await write(admin, "delete from public.list_members where list_id = %s and user_id = %s", shared, bob)
        _, removed = await next_poke(bob_phone, moved)
        assert removed > secret
        assert [seq for _, seq in bob_phone.pokes() if seq > start] == [moved, removed]
        await bob_phone.close()
        await alice_phone.close()

    asyncio.run(scenario())


def test_reconnecting_with_a_pull_cursor_or_a_watermelon_timestamp_catches_up(api, admin, running_feed):
    bob = uuid.uuid4()
    own = make_list(admin, bob, "bob's")
    persisted(admin, 1)
    headers = api.headers(api.user_token(bob))
    cursor = httpx.post(api.url + "/sync/v1/pull", headers=headers, json={"client_id": "bob-tablet"},
                        timeout=30).json()["cursor"]
    timestamp = httpx.get(api.url + "/sync/v1/watermelon", headers=headers, params={"schema_version": "1"},
                          timeout=30).json()["timestamp"]
    admin.execute("update public.lists set title = 'renamed while away' where id = %s", (own,))
    now = persisted(admin, 2)

    async def scenario() -> None:
        base = live_url(api, api.user_token(bob))
        for how in (f"&client_id=bob-tablet&cursor={cursor}", f"&last_pulled_at={timestamp}"):
            listener = await listen("bob", base + how)
            _, caught_up = await next_poke(listener, 0)
            assert caught_up >= now, how
            await listener.close()
        messages, code = await refused(base + f"&client_id=someone-else&cursor={cursor}")
        assert code == 4400 and messages[0]["code"] == "bad_request"
        messages, code = await refused(base + "&last_pulled_at=123456789")
        assert code == 4400

    asyncio.run(scenario())
