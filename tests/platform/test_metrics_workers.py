"""With several server workers, /metrics counts the requests of all of them, not of the one that answers."""

from __future__ import annotations

import re

import httpx

from tests.conftest import serve_process

REQUESTS = 60


def served_health_requests(text: str) -> float:
    match = re.search(r'^tuskbase_http_requests_total\{service="health",status="200"\} ([\d.e+]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_two_workers_add_up_their_counts(database, tmp_path):
    with serve_process(database, tmp_path / "data", workers="2") as base:
        before = served_health_requests(httpx.get(f"{base}/metrics").text)
        for _ in range(REQUESTS):
            # A new connection each time, so the kernel spreads them over both workers.
            assert httpx.get(f"{base}/health", headers={"Connection": "close"}).status_code == 200
        after = served_health_requests(httpx.get(f"{base}/metrics").text)
    assert after - before == REQUESTS
    assert (tmp_path / "data" / "metrics").is_dir()
