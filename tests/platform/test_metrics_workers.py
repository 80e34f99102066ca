"""With several server workers, /metrics counts the requests of all of them, not of the one that answers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx

from tests.conftest import TEST_JWT_SECRET, TODO_APP, free_port

REQUESTS = 60


def served_health_requests(text: str) -> float:
    match = re.search(r'^tuskbase_http_requests_total\{service="health",status="200"\} ([\d.e+]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_two_workers_add_up_their_counts(database, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUSKBASE_", "PROMETHEUS_"))}
    env.update({"TUSKBASE_DATABASE_URL": database, "TUSKBASE_PORT": str(port), "TUSKBASE_WORKERS": "2",
                "TUSKBASE_JWT_SECRET": TEST_JWT_SECRET, "TUSKBASE_APP_DIR": str(TODO_APP),
                "TUSKBASE_DATA_DIR": str(tmp_path / "data")})
    server = subprocess.Popen([sys.executable, "-m", "tuskbase.cli", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "tuskbase serve did not start"
            time.sleep(0.2)
        before = served_health_requests(httpx.get(f"{base}/metrics").text)
        for _ in range(REQUESTS):
            # A new connection each time, so the kernel spreads them over both workers.
            assert httpx.get(f"{base}/health", headers={"Connection": "close"}).status_code == 200
        after = served_health_requests(httpx.get(f"{base}/metrics").text)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)
    assert after - before == REQUESTS
    assert (tmp_path / "data" / "metrics").is_dir()
