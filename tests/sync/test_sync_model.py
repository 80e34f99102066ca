"""A model check of pull: random writes by several users, random page sizes and lost answers; after every round
each device holds exactly what its user may see now (same rows, same values), nothing more."""

from __future__ import annotations

import json
import random
import uuid

from tests.sync.conftest import SyncClient, drain, new_user

TRUTH = """
select coalesce(json_object_agg(t.id, t.title), '{}')::text from public.todos t
"""


def visible_titles(admin, user):
    with admin.transaction():
        claims = json.dumps({"sub": user, "role": "authenticated"})
        admin.execute("select set_config('role', 'authenticated', true), "
                      "set_config('request.jwt.claims', %s, true)", (claims,))
        return json.loads(admin.execute(TRUTH).fetchone()[0])


def device_titles(device):
    return {key: row["title"] for key, row in device.rows.get("todos", {}).items()}


class StrictDevice(SyncClient):
    """Also checks that a delete names only a row the device holds (never an id it was not allowed to see)."""

    def apply(self, answer):
        if not answer["reset"]:
            for table, changes in answer["changes"].items():
                held = self.rows.get(table, {})
                for key in changes["deleted"]:
                    assert (key if isinstance(key, str) else json.dumps(key, sort_keys=True)) in held, (table, key)
                for row in changes["created"]:
                    assert row.get("id") not in held, (table, row)
        super().apply(answer)


def test_random_histories_converge_to_exactly_the_visible_rows(api, admin, feed):
    rng = random.Random(5)
    users = [new_user() for _ in range(3)]
    lists = {u: [str(admin.execute("insert into public.lists (owner_id, title) values (%s, 'l') returning id",
                                   (u,)).fetchone()[0]) for _ in range(2)] for u in users}
    all_lists = [lst for owned in lists.values() for lst in owned]
    todos: list[str] = []
    devices = [StrictDevice(api, u) for u in users for _ in range(2)]
    for round_number in range(14):
        for _ in range(rng.randint(3, 12)):
            action = rng.random()
            if action < 0.35 or not todos:
                todos.append(str(admin.execute(
                    "insert into public.todos (list_id, title) values (%s, %s) returning id",
                    (rng.choice(all_lists), f"t{round_number}-{rng.randint(0, 999)}")).fetchone()[0]))
            elif action < 0.55:
                admin.execute("update public.todos set title = %s where id = %s",
                              (f"u{round_number}-{rng.randint(0, 999)}", rng.choice(todos)))
            elif action < 0.65:
                admin.execute("update public.todos set list_id = %s where id = %s",
                              (rng.choice(all_lists), rng.choice(todos)))
            elif action < 0.75:
                admin.execute("delete from public.todos where id = %s", (todos.pop(rng.randrange(len(todos))),))
            elif action < 0.88:
                admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s) "
                              "on conflict do nothing", (rng.choice(all_lists), rng.choice(users)))
            else:
                admin.execute("delete from public.list_members where ctid = "
                              "(select ctid from public.list_members order by random() limit 1)")
        drain(feed)
        for device in devices:
            if rng.random() < 0.2:
                device.pull_once(limit=rng.randint(1, 4))  # the answer is lost on the way
            device.sync(limit=rng.choice([1, 3, 7, 1000]))
            assert device_titles(device) == visible_titles(admin, device.user_id), (round_number, device.client_id)
    assert any(device_titles(d) for d in devices)
    assert len({uuid.UUID(t) for t in todos}) == len(todos)
