"""Writes through the real postgrest client: insert, bulk insert, upsert, update, delete, Prefer headers, RPC,
and policies refusing writes to other users' rows."""

from __future__ import annotations

import httpx
import pytest
from postgrest.exceptions import APIError

from tests.rest.conftest import ALICE, BOB


def todo_titles(admin, list_id: str) -> list[str]:
    return [r[0] for r in admin.execute("select title from public.todos where list_id = %s order by title",
                                        (list_id,)).fetchall()]


def test_insert_returns_the_row_with_defaults(world, alice, admin):
    row = alice.table("todos").insert({"list_id": world.alice_list, "title": "eggs"}).execute().data
    assert len(row) == 1
    assert row[0]["title"] == "eggs"
    assert row[0]["created_by"] == str(ALICE)
    assert row[0]["done"] is False
    assert "eggs" in todo_titles(admin, world.alice_list)


def test_bulk_insert_with_columns_and_missing_default(world, alice, admin):
    rows = alice.table("todos").insert([
        {"list_id": world.alice_list, "title": "a", "position": 7},
        {"list_id": world.alice_list, "title": "b"},
    ], default_to_null=False).execute().data
    assert sorted((r["title"], r["position"]) for r in rows) == [("a", 7), ("b", 0)]
    # Without missing=default a key absent from one row is null for it: here a not-null violation (400).
    with pytest.raises(APIError) as caught:
        alice.table("todos").insert([
            {"list_id": world.alice_list, "title": "c", "done": True},
            {"list_id": world.alice_list, "title": "d"},
        ]).execute()
    assert caught.value.code == "23502"
    assert "c" not in todo_titles(admin, world.alice_list)


def test_insert_into_another_users_list_is_refused(world, alice, admin):
    with pytest.raises(APIError) as caught:
        alice.table("todos").insert({"list_id": world.bob_list, "title": "intruder"}).execute()
    assert caught.value.code == "42501"
    assert "intruder" not in todo_titles(admin, world.bob_list)


def test_anonymous_writes_are_refused(world, anon, admin):
    with pytest.raises(APIError) as caught:
        anon.table("lists").insert({"title": "anon list"}).execute()
    assert caught.value.code == "42501"
    assert admin.execute("select count(*) from public.lists where title = 'anon list'").fetchone()[0] == 0


def test_upsert_merge_ignore_and_on_conflict(world, alice, admin):
    todo_id = world.alice_todos[0]
    merged = alice.table("todos").upsert({"id": todo_id, "list_id": world.alice_list, "title": "oat milk"}) \
        .execute().data
    assert merged[0]["id"] == todo_id and merged[0]["title"] == "oat milk"
    ignored = alice.table("todos").upsert({"id": todo_id, "list_id": world.alice_list, "title": "ignored"},
                                          ignore_duplicates=True).execute().data
    assert ignored == []
    assert admin.execute("select title from public.todos where id = %s", (todo_id,)).fetchone()[0] == "oat milk"
    alice.table("lists").upsert({"id": world.alice_list, "owner_id": str(ALICE), "title": "Renamed"},
                                on_conflict="id").execute()
    assert admin.execute("select title from public.lists where id = %s", (world.alice_list,)).fetchone()[0] \
        == "Renamed"
    # list_members grants no UPDATE: ignore-duplicates needs only INSERT and leaves the row as it was.
    member = {"list_id": world.shared_list, "user_id": str(BOB), "role": "editor"}
    assert alice.table("list_members").upsert(member, ignore_duplicates=True, on_conflict="list_id,user_id") \
        .execute().data == []
    role = admin.execute("select role from public.list_members where list_id = %s and user_id = %s",
                         (world.shared_list, BOB)).fetchone()[0]
    assert role == "viewer"


def test_upsert_cannot_take_over_another_users_row(world, alice, admin):
    with pytest.raises(APIError):
        alice.table("todos").upsert({"id": world.bob_todos[0], "list_id": world.alice_list, "title": "stolen"}) \
            .execute()
    assert admin.execute("select title from public.todos where id = %s", (world.bob_todos[0],)).fetchone()[0] \
        == "bob private"


def test_update_with_filters_and_cross_user_refusal(world, alice, bob, admin):
    changed = alice.table("todos").update({"done": True}).eq("list_id", world.alice_list).lt("position", 2) \
        .execute().data
    assert sorted(r["title"] for r in changed) == ["milk 0", "milk 1"]
    assert all(r["done"] for r in changed)
    # Bob aims at Alice's private todo: nothing matches under his policies, nothing changes.
    assert bob.table("todos").update({"title": "hacked"}).eq("id", world.alice_todos[1]).execute().data == []
    assert bob.table("lists").update({"title": "hacked"}).eq("id", world.shared_list).execute().data == []
    assert admin.execute("select count(*) from public.todos where title = 'hacked'").fetchone()[0] == 0
    assert admin.execute("select title from public.lists where id = %s", (world.shared_list,)).fetchone()[0] \
        == "Shared trip"
    # Moving a todo into a list the user is not a member of fails WITH CHECK.
    with pytest.raises(APIError) as caught:
        alice.table("todos").update({"list_id": world.bob_list}).eq("id", world.alice_todos[0]).execute()
    assert caught.value.code == "42501"


def test_delete_and_cross_user_refusal(world, alice, bob, admin):
    assert bob.table("todos").delete().eq("id", world.alice_todos[0]).execute().data == []
    assert admin.execute("select count(*) from public.todos where id = %s", (world.alice_todos[0],)).fetchone()[0] == 1
    deleted = alice.table("todos").delete().eq("id", world.alice_todos[0]).execute().data
    assert [r["id"] for r in deleted] == [world.alice_todos[0]]
    assert admin.execute("select count(*) from public.todos where id = %s", (world.alice_todos[0],)).fetchone()[0] == 0


def test_prefer_return_count_and_preference_applied(world, api):
    headers = api.headers(api.user_token(ALICE))
    minimal = httpx.post(f"{api.url}/rest/v1/todos", json={"list_id": world.alice_list, "title": "x"},
                         headers={**headers, "Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b""
    assert minimal.headers["preference-applied"] == "return=minimal"
    located = httpx.post(f"{api.url}/rest/v1/todos", json={"list_id": world.alice_list, "title": "located"},
                         headers={**headers, "Prefer": "return=headers-only"})
    assert located.status_code == 201 and located.content == b""
    assert located.headers["location"].startswith("/todos?id=eq.")
    found = httpx.get(f"{api.url}/rest/v1{located.headers['location']}&select=title", headers=headers)
    assert found.json() == [{"title": "located"}]
    found_id = httpx.get(f"{api.url}/rest/v1{located.headers['location']}&select=id", headers=headers).json()
    httpx.delete(f"{api.url}/rest/v1/todos?id=eq.{found_id[0]['id']}", headers=headers)
    patched = httpx.patch(f"{api.url}/rest/v1/todos?list_id=eq.{world.alice_list}", json={"done": True},
                          headers={**headers, "Prefer": "return=minimal, count=exact"})
    assert patched.status_code == 204
    assert patched.headers["content-range"] == "0-5/6"
    deleted = httpx.delete(f"{api.url}/rest/v1/todos?title=eq.x",
                           headers={**headers, "Prefer": "return=representation",
                                    "Accept": "application/vnd.pgrst.object+json"})
    assert deleted.status_code == 200
    assert deleted.json()["title"] == "x"
    # A single-object write that touches several rows is refused and rolled back.
    many = httpx.patch(f"{api.url}/rest/v1/todos?list_id=eq.{world.alice_list}", json={"title": "same"},
                       headers={**headers, "Accept": "application/vnd.pgrst.object+json"})
    assert many.status_code == 406 and many.json()["code"] == "PGRST116"
    assert httpx.get(f"{api.url}/rest/v1/todos?title=eq.same", headers=headers).json() == []


BAD_WRITES = [
    ("invalid json", "post", "/todos", b"{nope", {}, 400, "PGRST102"),
    ("empty body", "post", "/todos", b"", {}, 400, "PGRST102"),
    ("unknown payload column", "post", "/todos", b'{"nope": 1}', {}, 400, "PGRST204"),
    ("array body for patch", "patch", "/todos?id=eq.00000000-0000-0000-0000-000000000000", b"[1]", {}, 400,
     "PGRST102"),
    ("wrong content type", "post", "/todos", b"a=b", {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     "PGRST107"),
    ("check violation", "post", "/lists", b'{"title": ""}', {}, 400, "23514"),
    ("unique violation", "post", "/list_members", None, {}, 409, "23505"),
    ("rpc by patch", "patch", "/rpc/is_list_member", b"{}", {}, 405, "PGRST101"),
]


@pytest.mark.parametrize(("name", "method", "path", "body", "extra", "status", "code"), BAD_WRITES,
                         ids=[b[0] for b in BAD_WRITES])
def test_bad_writes_have_postgrest_errors(api, world, name, method, path, body, extra, status, code):
    if body is None:
        body = f'{{"list_id": "{world.shared_list}", "user_id": "{BOB}"}}'.encode()
    headers = {**api.headers(api.user_token(ALICE)), "Content-Type": "application/json", **extra}
    response = httpx.request(method, f"{api.url}/rest/v1{path}", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"code", "message", "details", "hint"}
    assert response.json()["code"] == code


def test_too_large_body_is_413_in_postgrest_shape(api, world):
    big = b'{"title": "' + b"x" * (api.settings.max_body_bytes + 10) + b'"}'
    response = httpx.post(f"{api.url}/rest/v1/todos", content=big,
                          headers={**api.headers(api.user_token(ALICE)), "Content-Type": "application/json"})
    assert response.status_code == 413
    assert set(response.json()) == {"code", "message", "details", "hint"}


RPC_FUNCTIONS = """
create function public.add_numbers(a integer, b integer default 10) returns integer
  language sql immutable as $$ select a + b $$;
create function public.todos_of(target uuid) returns setof public.todos
  language sql stable as $$ select * from public.todos where list_id = target $$;
create function public.rename_list(target uuid, new_title text) returns void
  language sql as $$ update public.lists set title = new_title where id = target $$;
create function public.tag_echo(tags text[]) returns text[] language sql immutable as $$ select tags $$;
grant execute on function public.add_numbers, public.todos_of, public.rename_list, public.tag_echo to authenticated;
"""


@pytest.fixture
def functions(api, admin, world):
    import time

    admin.execute(RPC_FUNCTIONS)
    deadline = time.monotonic() + 10
    headers = api.headers(api.user_token(ALICE))
    while httpx.post(f"{api.url}/rest/v1/rpc/add_numbers", json={"a": 1}, headers=headers).status_code != 200:
        assert time.monotonic() < deadline, "the schema cache did not reload after CREATE FUNCTION"
        time.sleep(0.05)


def test_rpc_post_get_defaults_filters_and_void(functions, world, alice, bob, admin):
    assert alice.rpc("add_numbers", {"a": 1, "b": 2}).execute().data == 3
    assert alice.rpc("add_numbers", {"a": 1}).execute().data == 11
    assert alice.rpc("add_numbers", {"a": 5, "b": 5}, get=True).execute().data == 10
    assert alice.rpc("tag_echo", {"tags": ["a", "b"]}).execute().data == ["a", "b"]
    rows = alice.rpc("todos_of", {"target": world.alice_list}).select("title").lt("position", 2) \
        .order("position").execute().data
    assert rows == [{"title": "milk 0"}, {"title": "milk 1"}]
    # The function runs under the caller's RLS: Bob gets nothing from Alice's private list.
    assert bob.rpc("todos_of", {"target": world.alice_list}).execute().data == []
    alice.rpc("rename_list", {"target": world.alice_list, "new_title": "Food"}).execute()
    assert admin.execute("select title from public.lists where id = %s", (world.alice_list,)).fetchone()[0] == "Food"
    bob.rpc("rename_list", {"target": world.alice_list, "new_title": "Hacked"}).execute()
    assert admin.execute("select title from public.lists where id = %s", (world.alice_list,)).fetchone()[0] == "Food"
    with pytest.raises(APIError) as caught:
        alice.rpc("add_numbers", {"z": 1}).execute()
    assert caught.value.code == "PGRST202"


def test_rpc_get_runs_read_only(functions, world, api):
    response = httpx.get(f"{api.url}/rest/v1/rpc/rename_list",
                         params={"target": world.alice_list, "new_title": "x"},
                         headers=api.headers(api.user_token(ALICE)))
    assert response.status_code == 405
    assert response.json()["code"] == "25006"


def test_supabase_client_end_to_end(api, world):
    from supabase import create_client

    supabase = create_client(api.url, api.anon_key)
    supabase.postgrest.auth(api.user_token(ALICE))
    inserted = supabase.table("todos").insert({"list_id": world.alice_list, "title": "via supabase"}).execute()
    found = supabase.table("todos").select("id,title,lists(title)").eq("id", inserted.data[0]["id"]).execute()
    assert found.data == [{"id": inserted.data[0]["id"], "title": "via supabase",
                           "lists": {"title": "Alice groceries"}}]


TABLE_FUNCTIONS = """
create function public.list_stats(min_position integer default 0)
  returns table (list_title text, open_count bigint)
  language sql stable as $$
    select l.title, count(t.id) filter (where not t.done)
    from public.lists l left join public.todos t on t.list_id = l.id and t.position >= min_position
    group by l.title order by l.title $$;
create function public.split_name(full_name text, out first text, out last text)
  language sql immutable as $$ select split_part(full_name, ' ', 1), split_part(full_name, ' ', 2) $$;
grant execute on function public.list_stats, public.split_name to authenticated;
"""


def test_rpc_returning_table_and_out_parameters(api, admin, world, alice, bob):
    import time

    admin.execute(TABLE_FUNCTIONS)
    deadline = time.monotonic() + 10
    while True:
        try:
            rows = alice.rpc("list_stats", {}).execute().data
            break
        except Exception:
            assert time.monotonic() < deadline, "the schema cache did not reload"
            time.sleep(0.05)
    # RLS applies inside the function: Alice counts only what she may see.
    assert rows == [{"list_title": "Alice groceries", "open_count": 2},
                    {"list_title": "Shared trip", "open_count": 1}]
    assert alice.rpc("list_stats", {"min_position": 4}).execute().data[0] == {"list_title": "Alice groceries",
                                                                             "open_count": 0}
    assert [r["list_title"] for r in bob.rpc("list_stats", {}).execute().data] == ["Bob secrets", "Shared trip"]
    assert alice.rpc("split_name", {"full_name": "Ada Lovelace"}).execute().data == {"first": "Ada",
                                                                                    "last": "Lovelace"}


def test_max_affected_and_tx_rollback(world, alice, api, admin):
    with pytest.raises(APIError) as caught:
        alice.table("todos").update({"done": True}).eq("list_id", world.alice_list).max_affected(2).execute()
    assert caught.value.code == "PGRST124"
    assert admin.execute("select count(*) from public.todos where list_id = %s and done",
                         (world.alice_list,)).fetchone()[0] == 3  # unchanged: 0, 2 and 4 were done already
    one = alice.table("todos").delete().eq("id", world.alice_todos[0]).max_affected(1).execute()
    assert len(one.data) == 1
    rolled = httpx.post(f"{api.url}/rest/v1/todos", json={"list_id": world.alice_list, "title": "dry"},
                        headers={**api.headers(api.user_token(ALICE)), "Prefer": "return=representation,tx=rollback"})
    assert rolled.status_code == 201 and rolled.json()[0]["title"] == "dry"
    assert "tx=rollback" in rolled.headers["preference-applied"]
    assert admin.execute("select count(*) from public.todos where title = 'dry'").fetchone()[0] == 0
    strict = httpx.get(f"{api.url}/rest/v1/todos", headers={**api.headers(api.user_token(ALICE)),
                                                            "Prefer": "handling=strict, bogus=1"})
    assert strict.status_code == 400 and strict.json()["code"] == "PGRST122"


def test_a_column_whose_name_holds_a_placeholder_is_written(api, admin):
    """`price$1` is an identifier, not a parameter: each INSERT of a `missing=default` bulk insert binds its own
    values (one binder per statement), so nothing renumbers `$n` inside quoted names."""
    import time

    admin.execute('create table public.prices (id serial primary key, "price$1" numeric, '
                  "note text not null default 'none'); grant select, insert on public.prices to service_role")
    headers = {**api.headers(api.service_key), "Prefer": "missing=default, return=minimal"}
    deadline = time.monotonic() + 10
    while httpx.get(f"{api.url}/rest/v1/prices", headers=headers).status_code != 200:
        assert time.monotonic() < deadline, "the schema cache did not reload after CREATE TABLE"
        time.sleep(0.05)
    answer = httpx.post(f"{api.url}/rest/v1/prices", headers=headers,
                        json=[{"price$1": 1.5, "note": "first"}, {"price$1": 2}, {"note": "third"}])
    assert answer.status_code == 201, answer.text
    rows = admin.execute('select "price$1", note from public.prices order by id').fetchall()
    assert [(None if p is None else float(p), n) for p, n in rows] == [(1.5, "first"), (2.0, "none"), (None, "third")]
    planned = httpx.get(f"{api.url}/rest/v1/prices", params={"price$1": "gt.1", "select": "note"},
                        headers={**headers, "Prefer": "count=planned"})
    assert planned.status_code in (200, 206) and sorted(r["note"] for r in planned.json()) == ["first", "none"]
