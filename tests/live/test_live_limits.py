"""Live channel: authentication, bad input, token expiry and refresh, connection limits, 1,000 idle clients."""

from __future__ import annotations

import asyncio
import json
import resource
import time
import uuid

import pytest

from tests.live.conftest import listen, live_url, refused


@pytest.fixture
def settings(settings):
    return settings.replace(sync_live_max_connections=1010, sync_live_max_per_user=2)


def test_a_bad_token_or_parameter_is_refused_with_a_reason(api, running_feed):
    async def scenario() -> None:
        messages, code = await refused(live_url(api, "not-a-token"))
        assert code == 4001 and messages[0]["type"] == "error" and messages[0]["code"] == "invalid_token"
        forged = api.user_token(uuid.uuid4())[:-4] + "AAAA"
        messages, code = await refused(live_url(api, forged))
        assert code == 4001
        messages, code = await refused(live_url(api, api.user_token(uuid.uuid4())) + "x")  # bad signature
        assert code == 4001
        with_bad_seq = live_url(api, api.user_token(uuid.uuid4())).replace("&access_token", "&seq=-1&access_token")
        messages, code = await refused(with_bad_seq)
        assert code == 4400 and messages[0]["code"] == "bad_request"
        # A garbled message is answered, not fatal.
        listener = await listen("alice", live_url(api, api.user_token(uuid.uuid4())))
        await listener.socket.send("{nope")
        await listener.socket.send(json.dumps({"type": "ping"}))
        await listener.wait_for(lambda m: m["type"] == "pong")
        assert any(m["type"] == "error" and m["code"] == "bad_message" for _, m in listener.messages)
        await listener.close()

    asyncio.run(scenario())


def test_the_connection_ends_when_its_token_expires_unless_refreshed(api, running_feed):
    alice = uuid.uuid4()

    async def scenario() -> None:
        soon = int(time.time()) + 2
        messages, code = await refused(live_url(api, api.user_token(alice, exp=soon)))
        assert code == 4001 and messages[-1]["code"] == "token_expired"
        assert time.time() >= soon

        listener = await listen("alice", live_url(api, api.user_token(alice, exp=int(time.time()) + 2)))
        later = int(time.time()) + 3600
        await listener.socket.send(json.dumps({"type": "token", "token": api.user_token(alice, exp=later)}))
        _, answer = await listener.wait_for(lambda m: m["type"] == "token_ok")
        assert answer["expires_at"] == later
        await asyncio.sleep(2.5)
        await listener.socket.send(json.dumps({"type": "ping"}))
        await listener.wait_for(lambda m: m["type"] == "pong")  # still open past the first token's expiry
        # A token of someone else cannot take over the connection.
        await listener.socket.send(json.dumps({"type": "token", "token": api.user_token(uuid.uuid4())}))
        await listener.wait_for(lambda m: m.get("code") == "other_user")
        await asyncio.sleep(0.1)
        assert listener.socket.close_code == 4003
        await listener.close()

    asyncio.run(scenario())


def test_limits_per_user_and_in_total_and_a_thousand_idle_clients(api, admin, running_feed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    users = [uuid.uuid4() for _ in range(505)]
    list_id = admin.execute("insert into public.lists (owner_id, title) values (%s, 'mine') returning id",
                            (users[0],)).fetchone()[0]

    async def scenario() -> None:
        clients = []
        for start in range(0, 1010, 100):
            batch = [listen(f"user {i // 2}", live_url(api, api.user_token(users[i // 2])))
                     for i in range(start, min(start + 100, 1010))]
            clients += await asyncio.gather(*batch)
        assert len(clients) == 1010
        # A third connection of one user is refused; so is any connection past the total.
        messages, code = await refused(live_url(api, api.user_token(users[0])))
        assert code == 4029 and messages[0]["code"] == "too_many_connections"
        messages, code = await refused(live_url(api, api.user_token(uuid.uuid4())))
        assert code == 4029

        # With all of them connected, a write pokes the owner's two connections and nobody else.
        await asyncio.to_thread(admin.execute, "insert into public.todos (list_id, title) values (%s, 't')",
                                (list_id,))
        _, first = await clients[0].wait_for(lambda m: m["type"] == "poke")
        await clients[1].wait_for(lambda m: m["type"] == "poke" and m["seq"] == first["seq"])
        await asyncio.sleep(0.3)
        assert not [c.name for c in clients[2:] if c.pokes()]

        # Closing a connection frees its place.
        await clients[0].close()
        deadline = time.monotonic() + 5
        while True:
            try:
                again = await listen("user 0 again", live_url(api, api.user_token(users[0])))
                break
            except AssertionError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        await again.close()
        await asyncio.gather(*(c.close() for c in clients[1:]))

    asyncio.run(scenario())
