"""Fixtures of the REST tests: two users with their own lists and todos, and real postgrest clients."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from postgrest import SyncPostgrestClient

ALICE = uuid.UUID("00000000-0000-4000-8000-00000000a11c")
BOB = uuid.UUID("00000000-0000-4000-8000-000000000b0b")


@dataclass
class World:
    """What `world` arranged: ids of the rows each user owns."""

    alice_list: str
    bob_list: str
    shared_list: str  # Alice's, Bob is a viewer member
    alice_todos: list[str]
    bob_todos: list[str]


@pytest.fixture
def world(admin) -> World:
    def new_list(owner: uuid.UUID, title: str) -> str:
        return str(admin.execute("insert into public.lists (owner_id, title) values (%s, %s) returning id",
                                 (owner, title)).fetchone()[0])

    def new_todo(list_id: str, title: str, position: int, done: bool = False) -> str:
        return str(admin.execute(
            "insert into public.todos (list_id, title, position, done) values (%s, %s, %s, %s) returning id",
            (list_id, title, position, done)).fetchone()[0])

    alice_list = new_list(ALICE, "Alice groceries")
    bob_list = new_list(BOB, "Bob secrets")
    shared = new_list(ALICE, "Shared trip")
    admin.execute("insert into public.list_members (list_id, user_id, role) values (%s, %s, 'viewer')", (shared, BOB))
    alice_todos = [new_todo(alice_list, f"milk {i}", i, done=i % 2 == 0) for i in range(5)]
    alice_todos.append(new_todo(shared, "book hotel", 10))
    bob_todos = [new_todo(bob_list, "bob private", 1)]
    return World(alice_list, bob_list, shared, alice_todos, bob_todos)


def client(api, token: str | None = None) -> SyncPostgrestClient:
    return SyncPostgrestClient(f"{api.url}/rest/v1", headers=api.headers(token))


@pytest.fixture
def alice(api) -> SyncPostgrestClient:
    return client(api, api.user_token(ALICE))


@pytest.fixture
def bob(api) -> SyncPostgrestClient:
    return client(api, api.user_token(BOB))


@pytest.fixture
def anon(api) -> SyncPostgrestClient:
    return client(api)


@pytest.fixture
def service(api) -> SyncPostgrestClient:
    return SyncPostgrestClient(f"{api.url}/rest/v1", headers={"apikey": api.service_key,
                                                               "Authorization": f"Bearer {api.service_key}"})


THINGS = """
create table public.things (
  id integer primary key,
  name text,
  tags text[] not null default '{}',
  span int4range,
  doc jsonb,
  score numeric,
  owner_id uuid not null default auth.uid(),
  body_tsv tsvector generated always as (to_tsvector('english', coalesce(name, ''))) stored
);
alter table public.things enable row level security;
grant select, insert, update, delete on public.things to authenticated;
grant select on public.things to anon;
create policy things_owner on public.things for all to authenticated
  using (owner_id = auth.uid()) with check (owner_id = auth.uid());
create policy things_public on public.things for select to anon using (name like 'public%');
"""


@pytest.fixture
def things(api, admin, world):
    """A table made after the API started (the schema cache must reload), with arrays, ranges and JSON."""
    import time

    import httpx

    admin.execute(THINGS)
    rows = [
        (1, "public apple", ["red", "fruit"], "[1,5)", '{"color": {"name": "red"}, "size": 3}', 1.5, ALICE),
        (2, "banana split", ["yellow", "fruit"], "[4,10)", '{"color": {"name": "yellow"}, "size": 7}', None, ALICE),
        (3, "carrot", ["orange", "vegetable"], "[20,30)", '{"color": {"name": "orange"}, "size": 2}', 3, ALICE),
        (4, "public dates", ["brown", "fruit"], None, None, 10, BOB),
    ]
    with admin.cursor() as cursor:
        cursor.executemany("insert into public.things (id, name, tags, span, doc, score, owner_id) "
                           "values (%s, %s, %s, %s::int4range, %s::jsonb, %s, %s)", rows)
    deadline = time.monotonic() + 10
    while httpx.get(f"{api.url}/rest/v1/things", headers=api.headers(api.user_token(ALICE))).status_code != 200:
        assert time.monotonic() < deadline, "the schema cache did not reload after CREATE TABLE"
        time.sleep(0.05)
    return rows
