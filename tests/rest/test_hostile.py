"""Property-based: random and hostile query strings, headers and bodies never give a 500, never change rows that
policies forbid, and never run SQL from input."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.rest.conftest import BOB

COLUMNS = ["id", "list_id", "title", "done", "position", "created_by", "created_at", "nope", "lists", "todos",
           "title->x", "id->>0", '"title"', "done::text"]
OPERATORS = ["eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch", "in", "is", "isdistinct",
             "fts", "plfts", "phfts", "wfts", "cs", "cd", "ov", "sl", "sr", "nxl", "nxr", "adj", "not.eq",
             "eq(any)", "like(all)", "fts(english)", "fts(x;drop)", "bogus", ""]
HOSTILE = ["'; drop table public.todos; --", "\"; delete from public.lists; --", "$1", "$$", "\\", "(", ")", ",",
           "{", "}", "null", "true", "1e999", "-1", "2147483648", "'", '"', "%", "*", "\u00e9\u4e2d", "a.b.c",
           "00000000-0000-0000-0000-000000000000", "(1,2", "{a,b}", "[1,2)", "not_null", "or=(a.eq.1)", "\t",
           "select pg_sleep(5)", "x" * 300, "\u00b2", "-\u00b2", "\u0663", "1\u00b2"]
KEYS = ["select", "order", "limit", "offset", "or", "and", "not.or", "columns", "on_conflict", "lists.order",
        "todos.limit", "lists.or", *COLUMNS]
TABLES = ["todos", "lists", "list_members", "nope", "rpc/is_list_member", "rpc/nope", "batch", "persisted/x",
          "todos/1", "pg_catalog.pg_class", "public.todos", ""]

value = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20))
filter_value = st.builds(lambda op, v: f"{op}.{v}" if op else v, st.sampled_from(OPERATORS), value)
select = st.lists(st.one_of(st.sampled_from(COLUMNS), st.sampled_from(["*", "lists(*)", "todos!inner(id)",
                                                                       "x:title", "...lists(title)",
                                                                       "lists!nope(id)", "a:b:c", "count()"]),
                            value), max_size=4).map(",".join)
pair = st.one_of(
    st.tuples(st.just("select"), select),
    st.tuples(st.sampled_from(KEYS), filter_value),
    st.tuples(st.sampled_from(KEYS), value),
    st.tuples(value, value),
)
json_value = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                    st.sampled_from(HOSTILE), st.text(max_size=10)),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                              st.sampled_from(COLUMNS[:6] + HOSTILE[:3]), inner, max_size=4), max_leaves=8)
request = st.fixed_dictionaries({
    "method": st.sampled_from(["GET", "HEAD", "POST", "PATCH", "DELETE", "PUT", "OPTIONS"]),
    "table": st.sampled_from(TABLES),
    "params": st.lists(pair, max_size=5),
    "prefer": st.sampled_from([None, "return=representation", "count=exact", "resolution=merge-duplicates",
                               "missing=default", "count=planned,return=minimal", "tx=rollback", "bogus=1"]),
    "accept": st.sampled_from([None, "application/json", "application/vnd.pgrst.object+json", "text/csv",
                               "image/png", "*/*", "application/openapi+json"]),
    "range": st.sampled_from([None, "0-1", "5-2", "a-b", "0-"]),
    "profile": st.sampled_from([None, "public", "auth", "tuskbase", "pg_catalog"]),
    "body": st.one_of(st.none(), json_value.map(json.dumps), st.sampled_from(["{", "[", "", "nul", "\x00"])),
})

PROTECTED = """
select 'list', l.id::text, l.title, l.owner_id::text from public.lists l where l.owner_id <> %(bob)s
union all select 'todo', t.id::text, t.title || t.done || t.position, t.list_id::text from public.todos t
  join public.lists l on l.id = t.list_id where l.owner_id <> %(bob)s and not exists (
    select 1 from public.list_members m where m.list_id = l.id and m.user_id = %(bob)s)
union all select 'member', m.list_id::text, m.user_id::text, m.role from public.list_members m
  join public.lists l on l.id = m.list_id where l.owner_id <> %(bob)s
order by 1, 2, 3
"""


def test_hostile_requests_never_500_nor_break_policies(api, world, admin):
    protected_before = admin.execute(PROTECTED, {"bob": BOB}).fetchall()
    token = api.user_token(BOB)
    seen_statuses: set[int] = set()

    with httpx.Client(base_url=f"{api.url}/rest/v1", timeout=10) as http:
        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(request)
        def run(case):
            headers = api.headers(token)
            for name, key in (("Prefer", "prefer"), ("Accept", "accept"), ("Range", "range")):
                if case[key] is not None:
                    headers[name] = case[key]
            if case["profile"] is not None:
                headers["Accept-Profile"] = headers["Content-Profile"] = case["profile"]
            body = case["body"].encode() if case["body"] is not None and case["method"] not in ("GET", "HEAD") \
                else None
            if body is not None:
                headers["Content-Type"] = "application/json"
            response = http.request(case["method"], "/" + case["table"], params=case["params"], headers=headers,
                                    content=body)
            seen_statuses.add(response.status_code)
            assert response.status_code < 500, (case, response.status_code, response.text)
            if response.status_code >= 400 and case["method"] != "HEAD":
                error = response.json()
                assert {"code", "message"} <= set(error), response.text

        run()

    # A variety of answers were exercised, not only one kind of refusal.
    assert len(seen_statuses) >= 4, seen_statuses
    assert admin.execute(PROTECTED, {"bob": BOB}).fetchall() == protected_before
    assert admin.execute("select to_regclass('public.todos') is not null and "
                         "to_regclass('public.lists') is not null").fetchone()[0]


def test_well_formed_writes_by_another_user_never_touch_protected_rows(api, world, admin):
    """Bob sends plausible writes aimed at Alice's rows (real ids, upserts, filters): policies must hold."""
    protected_before = admin.execute(PROTECTED, {"bob": BOB}).fetchall()
    alice_ids = [world.alice_list, world.shared_list, *world.alice_todos]
    ids = st.sampled_from([*alice_ids, world.bob_list, *world.bob_todos])
    todo_body = st.fixed_dictionaries({}, optional={
        "id": ids, "list_id": ids, "title": st.sampled_from(["pwned", "x", ""]), "done": st.booleans(),
        "position": st.integers(-5, 5), "created_by": st.sampled_from([str(BOB), None])})
    list_body = st.fixed_dictionaries({}, optional={
        "id": ids, "owner_id": st.sampled_from([str(BOB), world.alice_list]), "title": st.sampled_from(["pwned"])})
    member_body = st.fixed_dictionaries({"list_id": ids, "user_id": st.sampled_from([str(BOB)])},
                                        optional={"role": st.sampled_from(["editor", "viewer"])})
    write = st.one_of(
        st.tuples(st.just("todos"), todo_body), st.tuples(st.just("lists"), list_body),
        st.tuples(st.just("list_members"), member_body))
    filters = st.lists(st.tuples(st.sampled_from(["id", "list_id"]), ids.map(lambda v: f"eq.{v}")), max_size=2)
    token = api.user_token(BOB)

    with httpx.Client(base_url=f"{api.url}/rest/v1", timeout=10) as http:
        @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(write, st.sampled_from(["POST", "PATCH", "DELETE"]), filters,
               st.sampled_from(["", "resolution=merge-duplicates", "resolution=ignore-duplicates",
                                "return=representation", "missing=default,return=representation"]),
               st.booleans())
        def run(target, method, where, prefer, bulk):
            table, body = target
            payload = [body, body] if bulk and method == "POST" else body
            headers = {**api.headers(token), "Prefer": prefer, "Content-Type": "application/json"}
            response = http.request(method, f"/{table}", params=where, headers=headers,
                                    content=json.dumps(payload) if method != "DELETE" else None)
            assert response.status_code < 500, (method, table, payload, response.text)

        run()

    assert admin.execute(PROTECTED, {"bob": BOB}).fetchall() == protected_before


def test_interleaved_users_on_shared_connections_each_see_only_their_own(api, world):
    """The REST pool (4 connections here) carries each caller's identity in the connection's session: 150
    concurrent requests of alice, bob and anon, reads and writes mixed, must each run as their own caller."""
    import asyncio

    from tests.rest.conftest import ALICE

    alice_headers, bob_headers = api.headers(api.user_token(ALICE)), api.headers(api.user_token(BOB))
    anon_headers = api.headers(None)
    alice_ids, bob_visible = set(world.alice_todos), {*world.bob_todos, world.alice_todos[-1]}  # + shared list

    async def one(http: httpx.AsyncClient, turn: int) -> None:
        who = turn % 3
        if who == 0:
            answer = await http.get("/rest/v1/todos?select=id", headers=alice_headers)
            assert {row["id"] for row in answer.json()} == alice_ids
        elif who == 1:
            answer = await http.get("/rest/v1/todos?select=id", headers=bob_headers)
            assert {row["id"] for row in answer.json()} == bob_visible
            # A write right after reads of others (read-only sessions) on the same connections.
            answer = await http.patch(f"/rest/v1/todos?id=eq.{world.bob_todos[0]}", json={"position": turn},
                                      headers=bob_headers)
            assert answer.status_code == 204, answer.text
        else:
            answer = await http.get("/rest/v1/todos?select=id", headers=anon_headers)
            assert answer.status_code == 401 and answer.json()["code"] == "42501", answer.text  # no grant to anon
            answer = await http.post("/rest/v1/todos", json={"list_id": world.alice_list, "title": "anon"},
                                     headers=anon_headers)
            assert answer.status_code == 401, answer.text

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            await asyncio.gather(*(one(http, turn) for turn in range(150)))

    asyncio.run(scenario())
