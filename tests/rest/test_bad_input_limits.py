"""Requests too large for the grammar or for Postgres: a coded 400 in PostgREST's shape, before any SQL runs.

- a query string over TUSKBASE_REST_MAX_QUERY_BYTES or TUSKBASE_REST_MAX_QUERY_TERMS is refused before it is
  parsed (a 30,000-filter query once took 272 ms of the event loop to parse);
- a statement needing more bound values than Postgres' protocol carries (32767) is refused while it is built
  (asyncpg's refusal was answered as 503);
- a select past Postgres' own limits (54011: more than 1664 columns) is the client's 400, not a 500.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Api, serve_api
from tests.rest.conftest import ALICE

TOO_LARGE = "TUSK410"


def _headers(api: Api) -> dict[str, str]:
    return api.headers(api.user_token(ALICE))


def _batch(api: Api, query: str) -> httpx.Response:
    return httpx.post(f"{api.url}/rest/v1/batch", headers=_headers(api), timeout=60,
                      json={"requests": [{"method": "GET", "path": "/todos", "query": query},
                                         {"method": "GET", "path": "/todos", "query": "select=id&limit=1"}]})


def _or_of(count: int) -> str:
    return "select=id&or=(" + ",".join(f"position.eq.{i}" for i in range(count)) + ")"


def _assert_refused(body: dict, code: str = TOO_LARGE) -> None:
    assert set(body) == {"code", "message", "details", "hint"}, body
    assert body["code"] == code, body


@pytest.fixture
def roomy_api(settings) -> Iterator[Api]:
    """An API whose grammar limits are raised far enough to let a statement reach the bound-values limit."""
    roomy = dataclasses.replace(settings, rest_max_query_bytes=10_000_000, rest_max_query_terms=1_000_000,
                                max_body_bytes=10_000_000)
    with serve_api(roomy) as served:
        yield served


def test_too_many_terms_is_refused_before_parsing(api, world):
    query = "select=id&" + "&".join(["done=eq.true"] * 4500)  # 4,501 terms, under the byte limit
    response = httpx.get(f"{api.url}/rest/v1/todos?{query}", headers=_headers(api))
    assert response.status_code == 400, response.text
    _assert_refused(response.json())
    assert "TUSKBASE_REST_MAX_QUERY_TERMS" in response.json()["hint"]


def test_a_select_of_5000_columns_is_refused(api, world):
    select = ",".join(f"c{i}:id" for i in range(5000))
    response = httpx.get(f"{api.url}/rest/v1/todos", params={"select": select}, headers=_headers(api))
    assert response.status_code == 400, response.text
    _assert_refused(response.json())


def test_a_select_past_postgres_column_limit_is_a_400(api, world):
    """1,700 columns pass the grammar limits; Postgres refuses them (54011), which is the client's 400."""
    select = ",".join(f"c{i}:id" for i in range(1700))
    response = httpx.get(f"{api.url}/rest/v1/todos", params={"select": select}, headers=_headers(api))
    assert response.status_code == 400, response.text
    _assert_refused(response.json(), "54011")


def test_a_30000_filter_batch_request_is_refused_before_parsing(api, world):
    response = _batch(api, "select=id&" + "&".join(f"position=neq.{i}" for i in range(30_000)))
    assert response.status_code == 200, response.text
    first, second = response.json()["responses"]
    assert first["status"] == 400, first
    _assert_refused(first["body"])
    assert "TUSKBASE_REST_MAX_QUERY_BYTES" in first["body"]["hint"]
    assert second["status"] == 200  # the other sub-requests still run


def test_a_40000_item_or_in_a_batch_is_a_400_not_a_503(api, world):
    response = _batch(api, _or_of(40_000))
    first = response.json()["responses"][0]
    assert first["status"] == 400, first
    _assert_refused(first["body"])


def test_more_bound_values_than_postgres_takes_is_a_400(roomy_api, world):
    """With the grammar limits out of the way, the statement builder counts its bound values and refuses."""
    response = _batch(roomy_api, _or_of(40_000))
    first, second = response.json()["responses"]
    assert first["status"] == 400, first
    _assert_refused(first["body"])
    assert "32767" in first["body"]["message"]
    assert second["status"] == 200
    under = _batch(roomy_api, _or_of(20_000))  # under the limit it runs
    assert under.json()["responses"][0]["status"] == 200, under.text
