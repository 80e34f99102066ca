"""Beyond PostgREST, for mobile clients: compression, ETag / 304, batches, persisted queries; plus OpenAPI and
the schema cache following DDL without a restart."""

from __future__ import annotations

import gzip
import time

import brotli
import httpx
import pytest
import zstandard

from tests.rest.conftest import ALICE, BOB


@pytest.fixture
def alice_headers(api):
    return api.headers(api.user_token(ALICE))


@pytest.fixture
def many_todos(admin, world):
    admin.execute("insert into public.todos (list_id, title, position) "
                  "select %s, 'bulk todo number ' || i, i from generate_series(100, 199) i", (world.alice_list,))


@pytest.mark.parametrize(("encoding", "decode"), [
    ("gzip", gzip.decompress),
    ("br", brotli.decompress),
    ("zstd", lambda data: zstandard.ZstdDecompressor().decompress(data, max_output_size=10_000_000)),
])
def test_large_bodies_are_compressed_when_asked(api, alice_headers, many_todos, encoding, decode):
    url = f"{api.url}/rest/v1/todos?select=id,title&order=position"
    plain = httpx.get(url, headers={**alice_headers, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    with httpx.stream("GET", url, headers={**alice_headers, "Accept-Encoding": encoding}) as response:
        raw = b"".join(response.iter_raw())
        assert response.headers["content-encoding"] == encoding
    assert len(raw) < len(plain.content) / 2
    assert decode(raw) == plain.content


def test_small_bodies_are_not_compressed(api, alice_headers, world):
    response = httpx.get(f"{api.url}/rest/v1/lists?select=title&limit=1",
                         headers={**alice_headers, "Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers


def test_etag_and_if_none_match(api, alice_headers, world, admin):
    url = f"{api.url}/rest/v1/todos?select=id,title&list_id=eq.{world.alice_list}"
    first = httpx.get(url, headers=alice_headers)
    tag = first.headers["etag"]
    again = httpx.get(url, headers={**alice_headers, "If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    admin.execute("update public.todos set title = 'changed' where id = %s", (world.alice_todos[0],))
    changed = httpx.get(url, headers={**alice_headers, "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    # The tag is per caller's view: Bob's answer to the same URL differs, so his tag does too.
    bob = httpx.get(url, headers=api.headers(api.user_token(BOB)))
    assert bob.json() == [] and bob.headers["etag"] != changed.headers["etag"]


def test_batch_runs_many_requests_in_one_round_trip(api, alice_headers, world, admin):
    response = httpx.post(f"{api.url}/rest/v1/batch", headers=alice_headers, json={"requests": [
        {"method": "GET", "path": "/lists", "query": {"select": "title", "order": "title"}},
        {"method": "POST", "path": "/todos", "body": {"list_id": world.alice_list, "title": "from batch"},
         "headers": {"Prefer": "return=representation"}},
        {"method": "GET", "path": "/todos?select=title&title=eq.from batch"},
        {"method": "GET", "path": "/nope"},
        {"method": "GET", "path": "/todos", "query": "id=eq." + world.bob_todos[0]},
    ]})
    assert response.status_code == 200
    answers = response.json()["responses"]
    assert [a["status"] for a in answers] == [200, 201, 200, 404, 200]
    assert answers[0]["body"] == [{"title": "Alice groceries"}, {"title": "Shared trip"}]
    assert answers[1]["body"][0]["title"] == "from batch"
    assert answers[2]["body"] == [{"title": "from batch"}]
    assert answers[3]["body"]["code"] == "PGRST205"
    assert answers[4]["body"] == []  # another user's row, still invisible


def test_batch_in_one_transaction_rolls_back_on_failure(api, alice_headers, world, admin):
    response = httpx.post(f"{api.url}/rest/v1/batch", headers=alice_headers, json={"transaction": True, "requests": [
        {"method": "POST", "path": "/todos", "body": {"list_id": world.alice_list, "title": "kept?"}},
        {"method": "POST", "path": "/todos", "body": {"list_id": world.bob_list, "title": "intruder"}},
        {"method": "GET", "path": "/todos"},
    ]})
    answers = response.json()["responses"]
    assert [a["status"] for a in answers] == [201, 403, 424]
    assert admin.execute("select count(*) from public.todos where title in ('kept?', 'intruder')").fetchone()[0] == 0
    ok = httpx.post(f"{api.url}/rest/v1/batch", headers=alice_headers, json={"transaction": True, "requests": [
        {"method": "POST", "path": "/todos", "body": {"list_id": world.alice_list, "title": "one"}},
        {"method": "PATCH", "path": "/todos", "query": "title=eq.one", "body": {"title": "two"}},
    ]})
    assert [a["status"] for a in ok.json()["responses"]] == [201, 204]
    assert admin.execute("select count(*) from public.todos where title = 'two'").fetchone()[0] == 1


@pytest.mark.parametrize("body", [{}, {"requests": []}, {"requests": "x"}, {"requests": [{"method": "GET"}]},
                                  {"requests": [{"path": "/todos"}] * 500}, [1, 2]])
def test_bad_batches_are_400(api, alice_headers, body):
    response = httpx.post(f"{api.url}/rest/v1/batch", headers=alice_headers, json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message", "details", "hint"}


def test_persisted_queries_by_name_and_hash(api, alice_headers, world):
    service = {"apikey": api.service_key, "Authorization": f"Bearer {api.service_key}"}
    spec = {"name": "open_todos", "path": "/todos", "query": "select=title&done=is.false&order=position"}
    refused = httpx.post(f"{api.url}/rest/v1/persisted", headers=alice_headers, json=spec)
    assert refused.status_code == 403
    registered = httpx.post(f"{api.url}/rest/v1/persisted", headers=service, json=spec)
    assert registered.status_code == 201
    digest = registered.json()["hash"]
    by_name = httpx.get(f"{api.url}/rest/v1/persisted/open_todos", headers=alice_headers)
    assert [r["title"] for r in by_name.json()] == ["milk 1", "milk 3", "book hotel"]
    by_hash = httpx.get(f"{api.url}/rest/v1/persisted/{digest}",
                        params={"list_id": f"eq.{world.shared_list}"}, headers=alice_headers)
    assert by_hash.json() == [{"title": "book hotel"}]
    bob = httpx.get(f"{api.url}/rest/v1/persisted/open_todos", headers=api.headers(api.user_token(BOB)))
    assert [r["title"] for r in bob.json()] == ["bob private", "book hotel"]
    # Re-registering a name reaches every API process (NOTIFY); here: the same process, new query.
    spec["query"] = "select=title&done=is.true&order=position"
    assert httpx.post(f"{api.url}/rest/v1/persisted", headers=service, json=spec).status_code == 201
    deadline = time.monotonic() + 10
    while [r["title"] for r in httpx.get(f"{api.url}/rest/v1/persisted/open_todos", headers=alice_headers).json()] \
            != ["milk 0", "milk 2", "milk 4"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    missing = httpx.get(f"{api.url}/rest/v1/persisted/nope", headers=alice_headers)
    assert missing.status_code == 404
    bad = httpx.post(f"{api.url}/rest/v1/persisted", headers=service, json={"name": "x", "path": "/nope"})
    assert bad.status_code == 404 and bad.json()["code"] == "PGRST205"


def test_openapi_describes_tables_and_functions(api, alice_headers, world):
    response = httpx.get(f"{api.url}/rest/v1/", headers=alice_headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openapi+json")
    spec = response.json()
    assert spec["swagger"] == "2.0"
    assert {"/todos", "/lists", "/list_members", "/rpc/is_list_member"} <= set(spec["paths"])
    assert spec["definitions"]["todos"]["properties"]["done"]["type"] == "boolean"
    assert "title" in spec["definitions"]["todos"]["required"]


def test_schema_cache_follows_ddl(api, alice_headers, world, admin):
    url = f"{api.url}/rest/v1/todos?select=id,note&limit=1"
    assert httpx.get(url, headers=alice_headers).json()["code"] == "42703"
    admin.execute("alter table public.todos add column note text default 'n'")
    deadline = time.monotonic() + 10
    while (response := httpx.get(url, headers=alice_headers)).status_code != 200:
        assert time.monotonic() < deadline, response.text
        time.sleep(0.05)
    assert response.json()[0]["note"] == "n"


def test_cors_preflight(api):
    response = httpx.options(f"{api.url}/rest/v1/todos", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "apikey, authorization, content-type"})
    assert response.status_code == 200
    assert "POST" in response.headers["access-control-allow-methods"]
    actual = httpx.get(f"{api.url}/rest/v1/todos", headers={"Origin": "http://localhost:3000", "apikey": api.anon_key,
                                                            "Authorization": f"Bearer {api.anon_key}"})
    assert actual.headers["access-control-allow-origin"] == "*"
    assert "Content-Range" in actual.headers["access-control-expose-headers"]
    # The anon key as bearer (what supabase clients send before login) is still anonymous: 401, not 403.
    assert actual.status_code == 401 and actual.json()["code"] == "42501"


def test_server_timing_reports_each_stage(api, alice_headers, world):
    response = httpx.get(f"{api.url}/rest/v1/lists?select=title", headers=alice_headers)
    stages = [part.split(";")[0].strip() for part in response.headers["server-timing"].split(",")]
    assert stages == ["parse", "plan", "query", "db"]


def test_connections_killed_under_the_pool_are_replaced(api, alice_headers, world, admin):
    assert httpx.get(f"{api.url}/rest/v1/lists?select=title", headers=alice_headers).status_code == 200
    killed = admin.execute("select count(pg_terminate_backend(pid)) from pg_stat_activity "
                           "where application_name = 'tuskbase-rest'").fetchone()[0]
    assert killed >= 1
    # A dead connection answers 503 (PGRST001) at most once; the pool then opens new ones.
    answers = [httpx.get(f"{api.url}/rest/v1/lists?select=title", headers=alice_headers) for _ in range(6)]
    assert {a.status_code for a in answers} <= {200, 503}
    assert all(a.json()["code"] == "PGRST001" for a in answers if a.status_code == 503)
    assert answers[-1].status_code == 200


def test_schema_listener_reconnects_after_losing_its_connection(api, alice_headers, world, admin):
    killed = admin.execute("select count(pg_terminate_backend(pid)) from pg_stat_activity "
                           "where query like 'LISTEN %tuskbase_schema%' and pid <> pg_backend_pid() "
                           "and datname = current_database()").fetchone()[0]
    assert killed >= 1
    time.sleep(0.5)
    admin.execute("create table public.after_restart (id int primary key)")
    admin.execute("grant select on public.after_restart to authenticated")
    deadline = time.monotonic() + 10
    while (response := httpx.get(f"{api.url}/rest/v1/after_restart", headers=alice_headers)).status_code != 200:
        assert time.monotonic() < deadline, response.text
        time.sleep(0.1)
    assert response.json() == []
