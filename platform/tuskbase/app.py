"""The API application: `create_app()` wires settings, the database pool and every service's routes.

Each service package exposes, in its `routes.py` (and `routes_<part>.py` for a large service), `ROUTES`
(Litestar handlers or routers) and optionally `STARTUP` / `SHUTDOWN` (async callables taking the app).
SERVICES below is the table of contents of the API.
"""

from __future__ import annotations

import hmac
import importlib
import logging
import pkgutil
from typing import Any

from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State

from tuskbase import db, migrate, observability, serving
from tuskbase.config import Settings, load
from tuskbase.tokens import ClaimsCache, Signer

SERVICES = ("auth", "rest", "sync", "storage", "push", "flags", "insights")
READY_QUERY = "select source, name, checksum from tuskbase.schema_migrations"

log = logging.getLogger("tuskbase.api")


@get("/health", media_type=MediaType.JSON, include_in_schema=False)
async def health() -> dict[str, str]:
    """The process is alive; says nothing of the database (that is /ready)."""
    return {"status": "ok"}


@get("/ready", media_type=MediaType.JSON, include_in_schema=False)
async def ready(state: State) -> Response[dict[str, Any]]:
    """200 when the database answers and every migration on disk is applied."""
    try:
        async with state.pool.acquire(timeout=2) as conn:
            applied = {tuple(row) for row in await conn.fetch(READY_QUERY, timeout=2)}
    except Exception as error:  # any failure to reach the database means not ready
        return Response({"status": "unavailable", "reason": f"database: {error}"}, status_code=503)
    missing = [name for (source, name, checksum) in state.expected_migrations
               if (source, name, checksum) not in applied]
    if missing:
        return Response({"status": "unavailable", "reason": f"migrations pending: {missing}"}, status_code=503)
    return Response({"status": "ready"})


@get("/metrics", include_in_schema=False)
async def metrics(request: Request, state: State) -> Response[bytes]:
    """Prometheus metrics; who may read them is TUSKBASE_METRICS_ACCESS (public, token or off)."""
    settings: Settings = state.settings
    if settings.metrics_access == "off":
        return Response(b'{"code": "TUSK404", "message": "metrics are turned off"}', status_code=404,
                        media_type=MediaType.JSON)
    if settings.metrics_access == "token" and not _bearer_matches(request, settings.metrics_token):
        return Response(b'{"code": "TUSK401", "message": "metrics need Authorization: Bearer <METRICS_TOKEN>"}',
                        status_code=401, media_type=MediaType.JSON, headers={"www-authenticate": "Bearer"})
    rest = state.get("rest")
    observability.sample_pools({"api": state.get("pool"), "rest": rest.pool if rest is not None else None})
    return Response(observability.render_metrics(), media_type=observability.METRICS_CONTENT_TYPE)


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _service_modules() -> list[Any]:
    """`routes.py` of every service, plus its `routes_<part>.py` modules (e.g. sync's routes_live.py)."""
    modules = []
    for name in SERVICES:
        package = importlib.import_module(f"tuskbase.{name}")
        parts = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("routes"))
        modules.extend(importlib.import_module(f"tuskbase.{name}.{part}") for part in parts)
    return modules


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load()
    modules = _service_modules()
    signer = Signer.from_settings(settings)
    state = State({
        "settings": settings,
        "signer": signer,
        "claims": ClaimsCache(signer),
        "expected_migrations": [(m.source, m.name, m.checksum) for m in migrate.all_migrations(settings.app_dir)],
    })

    async def open_pool(app: Litestar) -> None:
        app.state.pool = await db.create_pool(settings)

    async def close_pool(app: Litestar) -> None:
        pool = app.state.get("pool")
        if pool is not None:
            await pool.close()

    handlers: list[Any] = [health, ready, metrics]
    startup: list[Any] = [open_pool]
    shutdown: list[Any] = []
    for module in modules:
        handlers.extend(getattr(module, "ROUTES", ()))
        startup.extend(getattr(module, "STARTUP", ()))
        shutdown.extend(getattr(module, "SHUTDOWN", ()))
    shutdown.append(close_pool)
    startup.append(_guard_and_observe)  # last: it wraps whatever the services made of the ASGI handler

    return Litestar(
        route_handlers=handlers,
        state=state,
        on_startup=startup,
        on_shutdown=shutdown,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        logging_config=None,
    )


async def _guard_and_observe(app: Litestar) -> None:
    """Every request (REST's direct route included) gets an id, metrics and its access-log line, outside the
    body deadline so a 408 is counted and logged as one."""
    settings: Settings = app.state.settings
    claims: ClaimsCache = app.state.claims
    guarded = serving.BodyDeadline(app.asgi_handler, settings)
    app.asgi_handler = observability.RequestObserver(
        guarded, log_requests=settings.access_log, subject_of=lambda scope: _subject(claims, scope))


def _subject(claims: ClaimsCache, scope: dict[str, Any]) -> str | None:
    """`sub` of the request's bearer token, if the request verified it (it is then in the claims cache)."""
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                found = claims.cached(token.strip())
                sub = found.get("sub") if found else None
                return sub if isinstance(sub, str) else None
    return None


def asgi_factory() -> Litestar:
    """Entry point for ASGI servers (`granian --factory tuskbase.app:asgi_factory`)."""
    settings = load()
    observability.configure_logging(settings)
    serving.raise_file_limit(settings)
    return create_app(settings)
