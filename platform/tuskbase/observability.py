"""Request ids, access metrics and log formatting, kept as one raw ASGI middleware for a short hot path."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import uuid
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from tuskbase.config import Settings

REQUESTS = Counter("tuskbase_http_requests_total", "HTTP requests served", ["service", "status"])
LATENCY = Histogram(
    "tuskbase_http_request_seconds",
    "Time to serve an HTTP request",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


# Set (by `prepare_multiprocess`) when several server workers serve one port: each worker then writes its
# metrics to files in that folder, and whichever worker answers /metrics sums them all.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def render_metrics() -> bytes:
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


def prepare_multiprocess(settings: Settings, env: dict[str, str]) -> None:
    """Give the server workers one fresh metrics folder when there are several (else each counts alone)."""
    if settings.workers <= 1 or env.get(MULTIPROCESS_ENV):
        return
    folder = settings.data_dir.resolve() / "metrics"
    shutil.rmtree(folder, ignore_errors=True)  # counts of a previous run must not add up with this one's
    folder.mkdir(parents=True)
    env[MULTIPROCESS_ENV] = str(folder)


def _service_of(path: str) -> str:
    # "/rest/v1/todos" -> "rest": a bounded label set, never the raw path.
    parts = path.split("/", 2)
    return parts[1] if len(parts) > 1 and parts[1] else "root"


class RequestObserver:
    """Gives every request an id (kept from `X-Request-Id` when the client sent one) and counts it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode("latin-1")
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            service = _service_of(scope["path"])
            REQUESTS.labels(service, str(status)).inc()
            LATENCY.labels(service).observe(time.perf_counter() - started)


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value[:128]
    return None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Client libraries log every request at INFO; that is noise in a server log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
