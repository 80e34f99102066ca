"""/metrics: pool and live-connection gauges, live lifetimes kept out of the latency histogram, and access
as a setting (public, token, off)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import httpx
import pytest

from tests.conftest import serve_api
from tests.live.test_live_sse import Events


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in the Prometheus text `text`, or None when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? ([\d.e+-]+)$" if wanted else \
        rf"^{re.escape(name)} ([\d.e+-]+)$"
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else None


def test_pool_gauges_for_each_pool(api):
    httpx.get(f"{api.url}/rest/v1/todos?limit=1", headers={"apikey": api.service_key})  # opens a REST connection
    text = httpx.get(f"{api.url}/metrics").text
    for pool in ("api", "rest"):
        assert sample(text, "tuskbase_db_pool_max_connections", pool=pool) == api.settings.db_pool_max
        idle = sample(text, "tuskbase_db_pool_connections", pool=pool, state="idle")
        in_use = sample(text, "tuskbase_db_pool_connections", pool=pool, state="in_use")
        assert idle is not None and in_use is not None
        assert 1 <= idle + in_use <= api.settings.db_pool_max
    # /metrics itself holds no connection; the REST read above gave its connection back.
    assert sample(text, "tuskbase_db_pool_connections", pool="rest", state="in_use") == 0


def test_live_connections_are_gauged_and_their_lifetime_is_not_a_latency(api):
    token = api.user_token(uuid.uuid4())
    url = f"{api.url}/sync/v1/live"
    headers = {"apikey": api.anon_key, "Authorization": f"Bearer {token}"}

    def metrics() -> str:
        return httpx.get(f"{api.url}/metrics").text

    before = metrics()
    sync_latencies = sample(before, "tuskbase_http_request_seconds_count", service="sync") or 0.0
    lifetimes = sample(before, "tuskbase_sync_live_connection_seconds_count", transport="sse") or 0.0

    async def hold_a_stream() -> tuple[str, str]:
        async with httpx.AsyncClient(timeout=10) as client:
            events = Events(client, url, headers)
            await events.wait(lambda e: e[0] == "ready")
            await asyncio.sleep(1.2)  # a lifetime that would land in the latency histogram's slow buckets
            during = await asyncio.to_thread(metrics)
            events.close()
            await asyncio.sleep(0.3)
            return during, await asyncio.to_thread(metrics)

    during, after = asyncio.run(hold_a_stream())
    assert sample(during, "tuskbase_sync_live_connections") == 1
    assert sample(during, "tuskbase_sync_live_users") == 1
    deadline = time.monotonic() + 5
    while sample(after, "tuskbase_sync_live_connections") != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        after = metrics()
    assert sample(after, "tuskbase_sync_live_connections") == 0
    assert sample(after, "tuskbase_sync_live_connection_seconds_count", transport="sse") == lifetimes + 1
    assert (sample(after, "tuskbase_http_request_seconds_count", service="sync") or 0.0) == sync_latencies


@pytest.mark.parametrize("access", ["token", "off"])
def test_metrics_access_setting(settings, access):
    secret = "metrics-token-0123456789"
    with serve_api(settings.replace(metrics_access=access, metrics_token=secret)) as api:
        bare = httpx.get(f"{api.url}/metrics")
        wrong = httpx.get(f"{api.url}/metrics", headers={"Authorization": "Bearer metrics-token-wrong-guess"})
        right = httpx.get(f"{api.url}/metrics", headers={"Authorization": f"Bearer {secret}"})
    if access == "off":
        assert bare.status_code == wrong.status_code == right.status_code == 404
        return
    assert bare.status_code == wrong.status_code == 401
    assert bare.json()["code"] == "TUSK401"
    assert right.status_code == 200 and "tuskbase_http_requests_total" in right.text


def test_metrics_public_by_default(api):
    answer = httpx.get(f"{api.url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")


def test_unknown_paths_do_not_make_new_label_values(api):
    for n in range(5):
        httpx.get(f"{api.url}/random-{n}")
    text = httpx.get(f"{api.url}/metrics").text
    assert "random-" not in text
    assert sample(text, "tuskbase_http_requests_total", service="other", status="404") >= 5
