"""Request ids, access metrics and log formatting, kept as one raw ASGI middleware for a short hot path."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

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


# Label values of the access metrics: the first path segment when it is one of these, else "other", so an
# arbitrary URL never creates a new time series.
SERVICES = frozenset({"rest", "auth", "sync", "storage", "push", "ofrep", "insights", "health", "ready", "metrics"})
LIVE_PATH = "/sync/v1/live"
# A live connection (SSE or WebSocket) lasts as long as the client stays: its lifetime is not a latency.
LIVE_LIFETIME = Histogram(
    "tuskbase_sync_live_connection_seconds",
    "How long live-channel connections (SSE, WebSocket) stayed open",
    ["transport"],
    buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)

# Gauges sampled when /metrics is scraped (`sample_pools`); with several workers, the sum of what each live
# worker set last.
POOL_SIZE = Gauge("tuskbase_db_pool_max_connections", "Most connections the pool may open", ["pool"],
                  multiprocess_mode="livesum")
POOL_CONNECTIONS = Gauge("tuskbase_db_pool_connections", "Connections the pool holds, in use or idle",
                         ["pool", "state"], multiprocess_mode="livesum")
LIVE_CONNECTIONS = Gauge("tuskbase_sync_live_connections", "Live-channel connections (SSE and WebSocket) open",
                         multiprocess_mode="livesum")
LIVE_USERS = Gauge("tuskbase_sync_live_users", "Users holding at least one live-channel connection",
                   multiprocess_mode="livesum")


def sample_pools(pools: dict[str, Any]) -> None:
    """Set the pool gauges of each pool (asyncpg's, or REST's FastPool, which has the same three getters)."""
    for name, pool in pools.items():
        if pool is None:
            continue
        size, opened, idle = pool.get_max_size(), pool.get_size(), pool.get_idle_size()
        POOL_SIZE.labels(name).set(size)
        POOL_CONNECTIONS.labels(name, "idle").set(idle)
        POOL_CONNECTIONS.labels(name, "in_use").set(max(0, opened - idle))


access_log = logging.getLogger("tuskbase.access")
# Query parameters whose values are credentials or one-time secrets: never written to the log.
SECRET_PARAMS = frozenset({"apikey", "access_token", "refresh_token", "token", "token_hash", "code", "password",
                           "code_verifier", "id_token", "signature", "key", "secret"})


def _service_of(path: str) -> str:
    # "/rest/v1/todos" -> "rest": a bounded label set, never the raw path.
    parts = path.split("/", 2)
    if len(parts) < 2 or not parts[1]:
        return "root"
    return parts[1] if parts[1] in SERVICES else "other"


def loggable_target(path: str, query: bytes) -> str:
    """The request's path and query string with the values of secret parameters masked."""
    if not query:
        return path
    kept = []
    for item in query.decode("latin-1").split("&"):
        name, sep, _value = item.partition("=")
        kept.append(f"{name}=***" if sep and unquote(name).lower() in SECRET_PARAMS else item)
    return f"{path}?{'&'.join(kept)}"


class RequestObserver:
    """Gives every request an id (kept from `X-Request-Id` when the client sent one), counts it, and writes its
    line to the access log (`tuskbase.access`) when `log_requests`.

    `subject_of(scope)` names the user of a request (a verified token's `sub`), or None; it is asked only after
    the request is served, when the handler has verified the token.
    """

    def __init__(self, app: Any, *, log_requests: bool = True,
                 subject_of: Callable[[dict[str, Any]], str | None] | None = None) -> None:
        self.app = app
        self.log_requests = log_requests
        self.subject_of = subject_of

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "websocket" and scope["path"] == LIVE_PATH:
            started = time.perf_counter()
            try:
                await self.app(scope, receive, send)
            finally:
                LIVE_LIFETIME.labels("websocket").observe(time.perf_counter() - started)
            return
        if kind != "http":
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
            seconds = time.perf_counter() - started
            path = scope["path"]
            service = _service_of(path)
            REQUESTS.labels(service, str(status)).inc()
            if path == LIVE_PATH and status == 200:
                LIVE_LIFETIME.labels("sse").observe(seconds)
            else:
                LATENCY.labels(service).observe(seconds)
            if self.log_requests:
                self._log(scope, status, seconds, request_id)

    def _log(self, scope: dict[str, Any], status: int, seconds: float, request_id: bytes) -> None:
        if not access_log.isEnabledFor(logging.INFO):  # a logger raised above INFO costs the request nothing
            return
        user = None
        if self.subject_of is not None:
            try:
                user = self.subject_of(scope)
            except Exception:  # the log line must never fail the request
                user = None
        entry = {"method": scope["method"], "path": loggable_target(scope["path"], scope.get("query_string", b"")),
                 "status": status, "duration_ms": round(seconds * 1000, 2),
                 "request_id": request_id.decode("latin-1"), "user_id": user}
        access_log.info("%s %s %d %.1fms request_id=%s user_id=%s", entry["method"], entry["path"], status,
                        entry["duration_ms"], entry["request_id"], user or "-", extra={"access": entry})


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
        access = getattr(record, "access", None)
        if access is not None:
            entry.update(access)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class _StderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is when a record is emitted, not as it was when logging was configured: a
    test runner swaps it per test, and a handler bound to a closed one fails on every access-log line."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(settings: Settings) -> None:
    handler = _StderrHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Client libraries log every request at INFO; that is noise in a server log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
