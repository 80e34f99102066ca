"""The API process: health, readiness, request ids, metrics and the body-size limit."""

from __future__ import annotations

import httpx
import psycopg


def test_health_and_ready(api):
    assert httpx.get(f"{api.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{api.url}/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


def test_ready_reports_pending_migrations(api, admin):
    admin.execute("delete from tuskbase.schema_migrations where source = 'app'")
    ready = httpx.get(f"{api.url}/ready")
    assert ready.status_code == 503
    assert "0001_todo_lists.sql" in ready.json()["reason"]


def test_request_id_is_kept_or_made(api):
    given = httpx.get(f"{api.url}/health", headers={"X-Request-Id": "abc123"})
    assert given.headers["x-request-id"] == "abc123"
    made = httpx.get(f"{api.url}/health")
    assert len(made.headers["x-request-id"]) == 32


def test_metrics_count_requests(api):
    httpx.get(f"{api.url}/health")
    text = httpx.get(f"{api.url}/metrics").text
    assert 'tuskbase_http_requests_total{service="health",status="200"}' in text


def test_authenticator_cannot_act_without_a_role(database):
    """The API's login role has no rights of its own (NOINHERIT): only SET ROLE gives it any."""
    url = database.replace("postgres@", "authenticator@")
    with psycopg.connect(url) as conn:
        try:
            conn.execute("select * from public.todos")
        except psycopg.errors.InsufficientPrivilege:
            pass
        else:
            raise AssertionError("authenticator read an app table without a role")
