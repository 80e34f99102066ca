"""Push: one transaction under RLS, all or nothing, idempotent, with each table's conflict rule."""

from __future__ import annotations

import uuid

from tests.sync.conftest import SyncClient, drain, make_list, make_todo, new_user, push, received


def todo(admin, todo_id):
    return admin.execute("select title, done, position, xmin::text from public.todos where id = %s",
                         (todo_id,)).fetchone()


def two_devices(api, admin, feed):
    """Alice on a phone, Bob (a member of her list) on a laptop; both synced; one todo."""
    alice, bob = new_user(), new_user()
    shared = make_list(admin, alice)
    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (shared, bob))
    item = make_todo(admin, shared, "buy milk")
    drain(feed)
    phone, laptop = SyncClient(api, alice), SyncClient(api, bob)
    phone.sync()
    laptop.sync()
    return shared, item, phone, laptop


def set_rule(admin, rule):
    admin.execute("select sync.enable('public.todos', conflict => %s)", (rule,))


def test_merge_offline_edits_of_different_columns_both_win_same_column_conflicts(api, admin, feed):
    _shared, item, phone, laptop = two_devices(api, admin, feed)
    first = push(phone, {"todos": {"updated": [{"id": item, "title": "buy oat milk", "_changed": "title"}]}})
    assert first.status_code == 200, first.text
    drain(feed)
    second = push(laptop, {"todos": {"updated": [{"id": item, "done": True, "_changed": ["done"]}]}})
    assert second.status_code == 200, second.text
    assert todo(admin, item)[:2] == ("buy oat milk", True)
    drain(feed)

    clash = push(laptop, {"todos": {"updated": [{"id": item, "title": "buy soy milk", "_changed": "title"}]}})
    assert clash.status_code == 409
    refused = clash.json()["details"]["refused"]
    assert refused == [{"table": "todos", "key": item, "kind": "updated", "reason": "conflict", "columns": ["title"]}]
    assert todo(admin, item)[0] == "buy oat milk"
    drain(feed)
    laptop.sync()
    retry = push(laptop, {"todos": {"updated": [{"id": item, "title": "buy soy milk", "_changed": "title"}]}})
    assert retry.status_code == 200, retry.text
    assert todo(admin, item)[0] == "buy soy milk"


def test_merge_is_conservative_while_the_feed_has_not_logged_the_server_version(api, admin, feed):
    _shared, item, phone, laptop = two_devices(api, admin, feed)
    assert push(phone, {"todos": {"updated": [{"id": item, "title": "new title"}]}}).status_code == 200
    # Not yet in the change log: which columns the phone changed is unknown, so a differing value clashes.
    early = push(laptop, {"todos": {"updated": [{"id": item, "position": 5}]}})
    assert early.status_code == 409 and early.json()["details"]["refused"][0]["columns"] == ["position"]
    drain(feed)
    assert push(laptop, {"todos": {"updated": [{"id": item, "position": 5}]}}).status_code == 200
    assert todo(admin, item)[0] == "new title" and todo(admin, item)[2] == 5


def test_reject_refuses_a_row_changed_since_the_last_pull_and_nothing_of_the_push_is_applied(api, admin, feed):
    shared, item, phone, laptop = two_devices(api, admin, feed)
    set_rule(admin, "reject")
    assert push(phone, {"todos": {"updated": [{"id": item, "position": 7}]}}).status_code == 200
    new_id = str(uuid.uuid4())
    answer = push(laptop, {"todos": {"created": [{"id": new_id, "list_id": shared, "title": "eggs"}],
                                     "updated": [{"id": item, "position": 9}]}})
    assert answer.status_code == 409
    assert [r["reason"] for r in answer.json()["details"]["refused"]] == ["conflict"]
    assert todo(admin, item)[2] == 7
    assert admin.execute("select count(*) from public.todos where id = %s", (new_id,)).fetchone()[0] == 0
    # the phone edits its own write again without pulling: no conflict with itself
    assert push(phone, {"todos": {"updated": [{"id": item, "position": 8}]}}).status_code == 200
    drain(feed)
    laptop.sync()
    assert push(laptop, {"todos": {"updated": [{"id": item, "position": 9}]}}).status_code == 200
    assert todo(admin, item)[2] == 9


def test_last_writer_wins(api, admin, feed):
    _shared, item, phone, laptop = two_devices(api, admin, feed)
    set_rule(admin, "lww")
    assert push(phone, {"todos": {"updated": [{"id": item, "title": "phone"}]}}).status_code == 200
    assert push(laptop, {"todos": {"updated": [{"id": item, "title": "laptop"}]}}).status_code == 200
    assert todo(admin, item)[0] == "laptop"


def test_custom_resolver_function_decides(api, admin, feed):
    _shared, item, phone, laptop = two_devices(api, admin, feed)
    admin.execute("""
        create function public.join_titles(server jsonb, client jsonb, changed text[]) returns jsonb
        language sql as $$
          select case when client->>'title' = 'refuse me' then null
                      else client || jsonb_build_object('title', (server->>'title') || ' + ' || (client->>'title'))
                 end
        $$""")
    admin.execute("grant execute on function public.join_titles(jsonb, jsonb, text[]) to authenticated")
    set_rule(admin, "public.join_titles")
    assert push(phone, {"todos": {"updated": [{"id": item, "title": "phone"}]}}).status_code == 200
    answer = push(laptop, {"todos": {"updated": [{"id": item, "title": "laptop"}]}})
    assert answer.status_code == 200, answer.text
    assert todo(admin, item)[0] == "phone + laptop"
    refused = push(laptop, {"todos": {"updated": [{"id": item, "title": "refuse me"}]}})
    assert refused.status_code == 409
    assert refused.json()["details"]["refused"][0]["reason"] == "rejected_by_resolver"


def test_replayed_push_changes_nothing_and_answers_the_same(api, admin, feed):
    shared, item, phone, _laptop = two_devices(api, admin, feed)
    new_id = str(uuid.uuid4())
    changes = {"todos": {"created": [{"id": new_id, "list_id": shared, "title": "bread", "position": 1}],
                         "updated": [{"id": item, "done": True}]}}
    first = push(phone, changes, mutation_id="m-1")
    assert first.status_code == 200
    version = todo(admin, item)[3]
    admin.execute("update public.todos set done = false where id = %s", (item,))  # someone else, meanwhile
    again = push(phone, changes, mutation_id="m-1")
    assert again.status_code == 200 and again.content == first.content
    assert todo(admin, item)[1] is False and todo(admin, item)[3] != version
    assert admin.execute("select count(*) from public.todos where id = %s", (new_id,)).fetchone()[0] == 1
    # a refused push replays as the same refusal
    bad = {"todos": {"updated": [{"id": str(uuid.uuid4()), "title": "nope"}]}}
    refused = push(phone, bad, mutation_id="m-2")
    assert refused.status_code == 409 and refused.json()["details"]["refused"][0]["reason"] == "not_found"
    assert push(phone, bad, mutation_id="m-2").content == refused.content


def test_other_users_rows_cannot_be_written_or_even_probed(api, admin, feed):
    alice, mallory = new_user(), new_user()
    mine = make_list(admin, alice)
    item = make_todo(admin, mine, "alice's")
    drain(feed)
    thief = SyncClient(api, mallory)
    thief.sync()
    assert thief.ids("todos") == set()
    answer = push(thief, {"todos": {"updated": [{"id": item, "title": "pwned"}], "deleted": [item]}})
    assert answer.status_code == 409
    reasons = sorted(r["reason"] for r in answer.json()["details"]["refused"])
    assert reasons == ["not_found"]  # the delete of an invisible row is a no-op, the update is refused
    answer = push(thief, {"todos": {"created": [{"id": str(uuid.uuid4()), "list_id": mine, "title": "spam"}]}})
    assert answer.status_code == 409
    assert answer.json()["details"]["refused"][0]["reason"] == "forbidden"
    assert todo(admin, item)[0] == "alice's"
    assert admin.execute("select count(*) from public.todos").fetchone()[0] == 1


def test_pushed_creates_updates_and_deletes_reach_the_other_device(api, admin, feed):
    shared, item, phone, laptop = two_devices(api, admin, feed)
    new_id = str(uuid.uuid4())
    answer = push(phone, {"todos": {"created": [{"id": new_id, "list_id": shared, "title": "jam"}],
                                    "deleted": [item]}})
    assert answer.status_code == 200, answer.text
    drain(feed)
    answers = laptop.sync()
    assert [r["id"] for r in received(answers, "todos", "created")] == [new_id]
    assert received(answers, "todos", "deleted") == [item]
    assert laptop.ids("todos") == {new_id}


def test_push_bad_input_is_a_sync_error(api, admin, feed):
    device = SyncClient(api, new_user())
    cases = [
        ({"client_id": device.client_id, "mutation_id": "x", "changes": []}, 400, "SYNC100"),
        ({"client_id": device.client_id, "changes": {}}, 400, "SYNC100"),
        ({"client_id": device.client_id, "mutation_id": "x", "changes": {"nope": {}}}, 400, "SYNC102"),
        ({"client_id": device.client_id, "mutation_id": "x", "changes": {"todos": {"created": [1]}}}, 400, "SYNC100"),
    ]
    for body, status, code in cases:
        response = device.http.post("/sync/v1/push", json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    unknown = push(device, {"todos": {"created": [{"id": str(uuid.uuid4()), "colour": "red"}]}})
    assert unknown.status_code == 409
    assert unknown.json()["details"]["refused"][0]["reason"] == "unknown_column"


def test_concurrent_pushes_one_wins_under_reject_and_a_raced_replay_applies_once(api, admin, feed):
    from concurrent.futures import ThreadPoolExecutor

    shared, item, phone, laptop = two_devices(api, admin, feed)
    set_rule(admin, "reject")
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda d: push(d, {"todos": {"updated": [{"id": item, "title": d.client_id}]}}),
                                [phone, laptop]))
    assert sorted(a.status_code for a in answers) == [200, 409]
    winner = next(d for d, a in zip([phone, laptop], answers, strict=True) if a.status_code == 200)
    assert todo(admin, item)[0] == winner.client_id

    new_id = str(uuid.uuid4())
    changes = {"todos": {"created": [{"id": new_id, "list_id": shared, "title": "once"}]}}
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: push(phone, changes, mutation_id="same"), range(4)))
    assert {r.status_code for r in replies} == {200} and len({r.content for r in replies}) == 1
    assert admin.execute("select count(*) from public.todos where id = %s", (new_id,)).fetchone()[0] == 1
