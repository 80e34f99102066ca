"""PostgREST's aggregate functions and embedded counts, through the real postgrest client.

`world`: Alice sees her five "milk" todos (positions 0-4, done when even) and "book hotel" (position 10,
not done) of the list she shares with Bob; Bob sees his own todo (position 1) and "book hotel".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from postgrest import SyncPostgrestClient
from postgrest.exceptions import APIError

from tests.conftest import Api, serve_api
from tests.rest.conftest import ALICE, BOB, client


@pytest.fixture
def aggregating(settings) -> Iterator[Api]:
    with serve_api(dataclasses.replace(settings, rest_aggregates_enabled=True)) as served:
        yield served


@pytest.fixture
def alice_agg(aggregating, world) -> SyncPostgrestClient:
    return client(aggregating, aggregating.user_token(ALICE))


def by(rows: list[dict], key: str) -> dict:
    return {row[key]: row for row in rows}


def test_aggregates_are_refused_while_the_setting_is_off(world, alice):
    for select in ("count()", "position.sum()", "done,position.max()", "title,todos(position.avg())"):
        with pytest.raises(APIError) as caught:
            alice.table("lists" if "todos(" in select else "todos").select(select).execute()
        assert caught.value.code == "PGRST123", select
        assert caught.value.message == "Use of aggregate functions is not allowed"


def test_embedded_count_works_with_aggregates_off(world, alice, bob):
    rows = alice.table("lists").select("title,todos(count)").order("title").execute().data
    assert rows == [{"title": "Alice groceries", "todos": [{"count": 5}]},
                    {"title": "Shared trip", "todos": [{"count": 1}]}]
    # RLS decides what is counted: Bob sees only his own todo in his own list.
    assert bob.table("lists").select("title,n:todos(count)").eq("title", "Bob secrets").execute().data == [
        {"title": "Bob secrets", "n": [{"count": 1}]}]


def test_a_bare_count_outside_an_embed_is_a_column_while_aggregates_are_off(world, alice):
    """Only `rel(count)` is the legacy count: `select=count` or `done,count` would count (and group) the whole
    table with the setting off."""
    for table, select in (("todos", "count"), ("todos", "done,count"), ("lists", "title,todos(done,count)")):
        with pytest.raises(APIError) as caught:
            alice.table(table).select(select).execute()
        assert caught.value.code == "42703", select


def test_count_and_sum_of_all_visible_rows(alice_agg, aggregating):
    assert alice_agg.table("todos").select("count()").execute().data == [{"count": 6}]
    assert alice_agg.table("todos").select("position.sum(),position.max(),position.min()").execute().data == [
        {"sum": 20, "max": 10, "min": 0}]
    bob = client(aggregating, aggregating.user_token(BOB))
    assert bob.table("todos").select("count(),total:position.sum()").execute().data == [{"count": 2, "total": 11}]


def test_the_other_selected_columns_group_the_rows(alice_agg):
    rows = alice_agg.table("todos").select("done,count(),total:position.sum()").execute().data
    assert by(rows, "done") == {True: {"done": True, "count": 3, "total": 6},
                                False: {"done": False, "count": 3, "total": 14}}
    ordered = alice_agg.table("todos").select("done,n:count()").order("done", desc=True).execute().data
    assert ordered == [{"done": True, "n": 3}, {"done": False, "n": 3}]


def test_filters_apply_before_grouping_and_limit_after(alice_agg):
    rows = alice_agg.table("todos").select("done,count()").lt("position", 3).order("done").execute().data
    assert rows == [{"done": False, "count": 1}, {"done": True, "count": 2}]
    assert alice_agg.table("todos").select("done,count()").order("done").limit(1).execute().data == [
        {"done": False, "count": 3}]
    counted = alice_agg.table("todos").select("done,count()", count="exact").execute()
    assert counted.count == 2  # the number of groups


def test_input_and_output_casts(alice_agg):
    average = alice_agg.table("todos").select("position.avg()").execute().data[0]["avg"]
    assert abs(float(average) - 20 / 6) < 1e-9
    assert alice_agg.table("todos").select("position.avg()::int").execute().data == [{"avg": 3}]
    assert alice_agg.table("todos").select("position::text.max()").execute().data == [{"max": "4"}]  # text order
    assert alice_agg.table("todos").select("s:position::numeric.sum()::text").execute().data == [{"s": "20"}]


def test_aggregates_inside_an_embedded_resource(alice_agg):
    rows = alice_agg.table("lists").select("title,todos(done,count(),position.sum())").order("title").execute().data
    assert rows[0]["title"] == "Alice groceries"
    assert by(rows[0]["todos"], "done") == {True: {"done": True, "count": 3, "sum": 6},
                                             False: {"done": False, "count": 2, "sum": 4}}
    assert rows[1] == {"title": "Shared trip", "todos": [{"done": False, "count": 1, "sum": 10}]}


def test_an_embedded_resource_groups_the_rows(alice_agg):
    rows = alice_agg.table("todos").select("n:count(),lists(title)").execute().data
    assert sorted(rows, key=lambda r: r["lists"]["title"]) == [{"n": 5, "lists": {"title": "Alice groceries"}},
                                                              {"n": 1, "lists": {"title": "Shared trip"}}]
    spread = alice_agg.table("todos").select("count(),...lists(title)").execute().data
    assert by(spread, "title") == {"Alice groceries": {"count": 5, "title": "Alice groceries"},
                                   "Shared trip": {"count": 1, "title": "Shared trip"}}


def test_bad_aggregate_input_is_a_coded_error(alice_agg):
    with pytest.raises(APIError) as caught:
        alice_agg.table("todos").select("nope.sum()").execute()
    assert caught.value.code == "42703"
    with pytest.raises(APIError) as caught:
        alice_agg.table("todos").select("position.median()").execute()
    assert caught.value.code == "PGRST100"


def test_order_names_a_grouping_column(alice_agg):
    rows = alice_agg.table("todos").select("title,count()").order("title", desc=True).limit(2).execute().data
    assert rows == [{"title": "milk 4", "count": 1}, {"title": "milk 3", "count": 1}]
    with pytest.raises(APIError) as caught:  # PostgREST forwards Postgres' grouping error
        alice_agg.table("todos").select("done,count()").order("position").execute()
    assert caught.value.code == "42803" and '"todos.position" must appear in the GROUP BY' in caught.value.message


def test_aggregates_on_a_write_are_refused_and_change_nothing(alice_agg, aggregating, world, admin):
    import httpx

    before = admin.execute("select count(*) from public.todos").fetchone()[0]
    answer = httpx.post(f"{aggregating.url}/rest/v1/todos?select=count()",
                        headers={**aggregating.headers(aggregating.user_token(ALICE)),
                                 "Prefer": "return=representation"},
                        json={"list_id": world.alice_list, "title": "new"})
    assert answer.status_code == 400 and answer.json()["code"] == "PGRST100"
    assert admin.execute("select count(*) from public.todos").fetchone()[0] == before
