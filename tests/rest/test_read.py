"""Reads through the real postgrest client: select, every filter family, order, ranges, embedding, counts,
single-object, CSV, and RLS deciding what each caller sees."""

from __future__ import annotations

import httpx
import pytest
from postgrest.exceptions import APIError

from tests.rest.conftest import ALICE, BOB


def ids(response) -> list[int]:
    return sorted(row["id"] for row in response.data)


def test_each_user_sees_only_rows_their_policies_allow(world, alice, bob):
    mine = alice.table("todos").select("id,title").execute().data
    assert sorted(r["id"] for r in mine) == sorted(world.alice_todos)
    theirs = bob.table("todos").select("id,title").execute().data
    # Bob sees his own todo and the one of the list Alice shared with him, nothing else.
    assert sorted(r["id"] for r in theirs) == sorted([*world.bob_todos, world.alice_todos[-1]])
    assert not set(world.bob_todos) & {r["id"] for r in mine}


def test_another_users_row_by_id_is_not_returned(world, alice, bob):
    assert alice.table("todos").select("*").eq("id", world.bob_todos[0]).execute().data == []
    assert bob.table("lists").select("*").eq("id", world.alice_list).execute().data == []
    with pytest.raises(APIError) as caught:
        bob.table("lists").select("*").eq("id", world.alice_list).single().execute()
    assert caught.value.code == "PGRST116"


def test_anonymous_callers_without_a_grant_get_401(world, anon):
    with pytest.raises(APIError) as caught:
        anon.table("todos").select("*").execute()
    assert caught.value.code == "42501"


@pytest.mark.parametrize(("method", "column", "value", "expected"), [
    ("eq", "name", "carrot", [3]),
    ("neq", "name", "carrot", [1, 2]),
    ("gt", "score", 1.5, [3]),
    ("gte", "score", 1.5, [1, 3]),
    ("lt", "score", 3, [1]),
    ("lte", "score", 3, [1, 3]),
    ("like", "name", "%an%", [2]),
    ("ilike", "name", "%APPLE%", [1]),
    ("is_", "score", "null", [2]),
    ("in_", "id", [1, 3, 99], [1, 3]),
    ("contains", "tags", ["fruit"], [1, 2]),
    ("contained_by", "tags", ["red", "fruit", "blue"], [1]),
    ("overlaps", "tags", ["orange", "yellow"], [2, 3]),
    ("range_lt", "span", (10, 20), [1, 2]),
    ("range_gt", "span", (10, 20), [3]),
    ("range_lte", "span", (1, 6), [1]),
    ("range_gte", "span", (3, 6), [2, 3]),
    ("range_adjacent", "span", (9, 20), [2, 3]),
])
def test_filter_families_through_the_client(things, alice, method, column, value, expected):
    builder = alice.table("things").select("id")
    response = getattr(builder, method)(column, value).execute()
    assert ids(response) == expected


@pytest.mark.parametrize(("column", "operator", "value", "expected"), [
    ("name", "match", "^ba", [2]),
    ("name", "imatch", "^CAR", [3]),
    ("score", "isdistinct", "3", [1, 2]),
    ("name", "like(any)", "{*apple,carrot}", [1, 3]),
    ("name", "ilike(all)", "{*A*,*N*}", [2]),
    ("score", "eq(any)", "{3,10}", [3]),
    ("body_tsv", "fts(english)", "apples", [1]),
    ("body_tsv", "plfts", "banana split", [2]),
    ("body_tsv", "phfts(english)", "banana split", [2]),
    ("body_tsv", "wfts", "carrot or apple", [1, 3]),
    ("doc->color->>name", "eq", "orange", [3]),
    ("doc->>size", "eq", "7", [2]),
    ("span", "ov", "[2,4]", [1, 2]),
    ("tags", "cs", "{vegetable}", [3]),
])
def test_other_operators(things, alice, column, operator, value, expected):
    assert ids(alice.table("things").select("id").filter(column, operator, value).execute()) == expected


def test_not_or_and_nested(things, alice):
    assert ids(alice.table("things").select("id").not_.eq("name", "carrot").execute()) == [1, 2]
    assert ids(alice.table("things").select("id").not_.in_("id", [1, 2]).execute()) == [3]
    assert ids(alice.table("things").select("id").or_("id.eq.1,name.eq.carrot").execute()) == [1, 3]
    nested = alice.table("things").select("id").or_("id.eq.3,and(score.gte.1,score.lt.2)").execute()
    assert ids(nested) == [1, 3]
    quoted = alice.table("things").select("id").or_('name.eq."banana split",not.and(id.lt.3,id.gt.0)').execute()
    assert ids(quoted) == [2, 3]


def test_order_limit_offset_and_range(things, alice):
    rows = alice.table("things").select("id,score").order("score", desc=True, nullsfirst=True).execute().data
    assert [r["id"] for r in rows] == [2, 3, 1]
    rows = alice.table("things").select("id").order("score", nullsfirst=False).limit(2).execute().data
    assert [r["id"] for r in rows] == [1, 3]
    rows = alice.table("things").select("id").order("id").range(1, 2).execute().data
    assert [r["id"] for r in rows] == [2, 3]
    rows = alice.table("things").select("id").order("id").limit(1).offset(2).execute().data
    assert [r["id"] for r in rows] == [3]


def test_select_aliases_casts_and_json_paths(things, alice):
    row = alice.table("things").select("key:id,score::text,color:doc->color->>name,doc->size").eq("id", 1) \
        .execute().data[0]
    assert row == {"key": 1, "score": "1.5", "color": "red", "size": 3}


def test_embedding_both_directions_inner_hint_and_spread(world, alice):
    todo = alice.table("todos").select("title,lists(title)").eq("id", world.alice_todos[0]).single().execute()
    assert todo.data == {"title": "milk 0", "lists": {"title": "Alice groceries"}}
    lists = alice.table("lists").select("title,items:todos(title,position)").order("title") \
        .order("position", foreign_table="items", desc=True).limit(2, foreign_table="items").execute().data
    assert lists == [
        {"title": "Alice groceries", "items": [{"title": "milk 4", "position": 4}, {"title": "milk 3", "position": 3}]},
        {"title": "Shared trip", "items": [{"title": "book hotel", "position": 10}]},
    ]
    inner = alice.table("lists").select("title,todos!inner(title)").eq("todos.title", "book hotel").execute().data
    assert inner == [{"title": "Shared trip", "todos": [{"title": "book hotel"}]}]
    hinted = alice.table("todos").select("title,lists!todos_list_id_fkey(title)").eq("title", "milk 1").execute()
    assert hinted.data == [{"title": "milk 1", "lists": {"title": "Alice groceries"}}]
    spread = alice.table("todos").select("title,...lists(list_title:title)").eq("title", "milk 2").execute()
    assert spread.data == [{"title": "milk 2", "list_title": "Alice groceries"}]
    members = alice.table("lists").select("title,list_members(role)").eq("id", world.shared_list).execute()
    assert members.data == [{"title": "Shared trip", "list_members": [{"role": "viewer"}]}]


def test_embedded_rows_still_obey_rls(world, bob):
    # Bob reads the shared list's todos, never those of Alice's private list through any embedding.
    lists = bob.table("lists").select("id,todos(id)").execute().data
    seen = {t["id"] for lst in lists for t in lst["todos"]}
    assert seen == {world.alice_todos[-1], *world.bob_todos}
    todos = bob.table("todos").select("id,lists(owner_id)").execute().data
    assert {t["lists"]["owner_id"] for t in todos} == {str(ALICE), str(BOB)}


def test_order_by_a_column_of_an_embedded_to_one_resource(world, alice, api):
    rows = alice.table("todos").select("title,lists(title)").order("lists(title)", desc=True) \
        .order("position").limit(2).execute().data
    assert rows == [{"title": "book hotel", "lists": {"title": "Shared trip"}},
                    {"title": "milk 0", "lists": {"title": "Alice groceries"}}]
    refused = httpx.get(f"{api.url}/rest/v1/lists?select=title,todos(title)&order=todos(title)",
                        headers=api.headers(api.user_token(ALICE)))
    assert refused.status_code == 400 and refused.json()["code"] == "PGRST118"


def test_filter_on_embedded_presence_and_embedded_or(world, alice):
    rows = alice.table("lists").select("title,todos(title)").filter("todos", "not.is", "null") \
        .eq("todos.done", "false").order("title").execute().data
    assert [r["title"] for r in rows] == ["Alice groceries", "Shared trip"]
    assert all(not t["title"].endswith(("0", "2", "4")) for r in rows for t in r["todos"])
    rows = alice.table("lists").select("title,todos(title)").or_("title.eq.milk 1,title.eq.milk 3",
                                                                   reference_table="todos") \
        .eq("id", world.alice_list).execute().data
    assert sorted(t["title"] for t in rows[0]["todos"]) == ["milk 1", "milk 3"]


def test_counts_content_range_and_partial_content(things, alice, api):
    counted = alice.table("things").select("id", count="exact").order("id").limit(2).execute()
    assert counted.count == 3
    assert [r["id"] for r in counted.data] == [1, 2]
    response = httpx.get(f"{api.url}/rest/v1/things?select=id&order=id", headers={
        **api.headers(api.user_token(ALICE)), "Prefer": "count=exact", "Range-Unit": "items", "Range": "1-1"})
    assert response.status_code == 206
    assert response.headers["content-range"] == "1-1/3"
    assert response.json() == [{"id": 2}]
    head = alice.table("things").select("*", count="exact", head=True).execute()
    assert head.count == 3
    beyond = httpx.get(f"{api.url}/rest/v1/things?offset=10", headers={
        **api.headers(api.user_token(ALICE)), "Prefer": "count=exact"})
    assert beyond.status_code == 416
    assert beyond.json()["code"] == "PGRST103"


def test_planned_and_estimated_counts(things, alice, admin):
    admin.execute("analyze public.things")
    planned = alice.table("things").select("id", count="planned").execute()
    assert isinstance(planned.count, int) and planned.count >= 0
    # Estimated is exact below the max-rows threshold: RLS still hides Bob's row.
    estimated = alice.table("things").select("id", count="estimated").gt("id", 1).execute()
    assert estimated.count == 2


def test_single_object_and_maybe_single(world, alice):
    one = alice.table("lists").select("title").eq("id", world.alice_list).single().execute()
    assert one.data == {"title": "Alice groceries"}
    with pytest.raises(APIError) as caught:
        alice.table("todos").select("title").single().execute()
    assert caught.value.code == "PGRST116"
    assert alice.table("lists").select("title").eq("title", "nope").maybe_single().execute() is None


def test_csv(things, alice):
    text = alice.table("things").select("id,name").order("id").csv().execute().data
    assert text.splitlines() == ["id,name", "1,public apple", "2,banana split", "3,carrot"]


def test_anon_sees_only_what_its_policy_allows(things, anon):
    assert ids(anon.table("things").select("id").execute()) == [1, 4]


ERRORS = [
    # name, path and query, expected status, expected code
    ("unknown table", "/nope", 404, "PGRST205"),
    ("unknown column in select", "/todos?select=nope", 400, "42703"),
    ("unknown column in filter", "/todos?nope=eq.1", 400, "42703"),
    ("unknown operator", "/todos?title=foo.bar", 400, "PGRST100"),
    ("bad in list", "/todos?title=in.a,b", 400, "PGRST100"),
    ("bad is value", "/todos?done=is.maybe", 400, "PGRST100"),
    ("bad limit", "/todos?limit=ten", 400, "PGRST100"),
    ("bad order", "/todos?order=title.sideways", 400, "PGRST100"),
    ("unbalanced logic", "/todos?or=(title.eq.a", 400, "PGRST100"),
    ("unknown relationship", "/todos?select=*,nope(*)", 400, "PGRST200"),
    ("bad value for type", "/todos?position=eq.abc", 400, "22P02"),
    ("bad uuid", "/todos?id=eq.1", 400, "22P02"),
    ("unknown function", "/rpc/nope", 404, "PGRST202"),
    ("filter on a resource not embedded", "/lists?select=title&todos.done=eq.true", 400, "PGRST108"),
    ("ambiguous or unknown hint", "/todos?select=*,lists!nope(*)", 400, "PGRST200"),
    ("spread of one-to-many", "/lists?select=...todos(title)", 400, "PGRST119"),
    ("like on a json path", "/todos?title->a=like.x*", 404, "42883"),
    ("unicode digit as a json index", "/todos?select=title->\u00b2", 404, "42883"),
]


@pytest.mark.parametrize(("name", "path", "status", "code"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_have_postgrest_shape(api, world, name, path, status, code):
    response = httpx.get(f"{api.url}/rest/v1{path}", headers=api.headers(api.user_token(ALICE)))
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details", "hint"}
    assert body["code"] == code


def test_tokens_and_profiles(api, world):
    bad = httpx.get(f"{api.url}/rest/v1/todos", headers={"apikey": api.anon_key, "Authorization": "Bearer x.y.z"})
    assert bad.status_code == 401
    assert bad.json()["code"] == "PGRST301"
    none = httpx.get(f"{api.url}/rest/v1/todos")
    assert none.status_code == 401
    profile = httpx.get(f"{api.url}/rest/v1/todos", headers={**api.headers(api.user_token(ALICE)),
                                                             "Accept-Profile": "auth"})
    assert profile.status_code == 406
    assert profile.json()["code"] == "PGRST106"
    accept = httpx.get(f"{api.url}/rest/v1/todos", headers={**api.headers(api.user_token(ALICE)),
                                                            "Accept": "image/png"})
    assert accept.status_code == 406


def test_service_role_bypasses_rls(world, service):
    everything = service.table("todos").select("id").execute().data
    assert len(everything) == len(world.alice_todos) + len(world.bob_todos)


def test_many_to_many_through_a_junction_table(api, admin, world, alice):
    import time

    admin.execute("""
        create table public.tags (id serial primary key, name text not null);
        create table public.todo_tags (todo_id uuid references public.todos on delete cascade,
                                       tag_id integer references public.tags, primary key (todo_id, tag_id));
        grant select on public.tags, public.todo_tags to authenticated;
        insert into public.tags (name) values ('urgent'), ('later');
    """)
    admin.execute("insert into public.todo_tags values (%s, 1), (%s, 2), (%s, 1)",
                  (world.alice_todos[0], world.alice_todos[0], world.bob_todos[0]))
    deadline = time.monotonic() + 10
    while True:
        try:
            rows = alice.table("todos").select("title,tags(name)").eq("id", world.alice_todos[0]).execute().data
            break
        except Exception:
            assert time.monotonic() < deadline, "the schema cache did not reload"
            time.sleep(0.05)
    assert rows == [{"title": "milk 0", "tags": [{"name": "urgent"}, {"name": "later"}]}]
    # From the other side, Bob's todo stays invisible to Alice (RLS on todos applies inside the embedding).
    tags = alice.table("tags").select("name,todos(title)").eq("name", "urgent").execute().data
    assert tags == [{"name": "urgent", "todos": [{"title": "milk 0"}]}]


def test_views_embed_through_the_foreign_keys_of_their_tables(api, admin, world, alice, bob):
    import time

    admin.execute("""
        create view public.open_todos with (security_invoker = true) as
          select id, list_id, title, position from public.todos where not done;
        grant select on public.open_todos to authenticated;
    """)
    deadline = time.monotonic() + 10
    while True:
        try:
            rows = alice.table("open_todos").select("title,lists(title)").order("position").execute().data
            break
        except Exception:
            assert time.monotonic() < deadline, "the schema cache did not reload"
            time.sleep(0.05)
    assert rows == [{"title": "milk 1", "lists": {"title": "Alice groceries"}},
                    {"title": "milk 3", "lists": {"title": "Alice groceries"}},
                    {"title": "book hotel", "lists": {"title": "Shared trip"}}]
    lists = alice.table("lists").select("title,open_todos(title)").eq("id", world.alice_list) \
        .order("position", foreign_table="open_todos").execute().data
    assert lists == [{"title": "Alice groceries", "open_todos": [{"title": "milk 1"}, {"title": "milk 3"}]}]
    # security_invoker: the view applies the caller's RLS, Bob never sees Alice's private open todos.
    assert {r["title"] for r in bob.table("open_todos").select("title").execute().data} == {"bob private",
                                                                                          "book hotel"}
