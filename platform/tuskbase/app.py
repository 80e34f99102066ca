"""The API application: `create_app()` wires settings, the database pool and every service's routes.

Each service package exposes, in its `routes.py` (and `routes_<part>.py` for a large service), `ROUTES`
(Litestar handlers or routers) and optionally `STARTUP` / `SHUTDOWN` (async callables taking the app).
SERVICES below is the table of contents of the API.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import Any

from litestar import Litestar, MediaType, Response, get
from litestar.datastructures import State

from tuskbase import db, migrate, observability
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


@get("/metrics", media_type="text/plain; version=0.0.4", include_in_schema=False)
async def metrics() -> bytes:
    return observability.render_metrics()


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

    return Litestar(
        route_handlers=handlers,
        state=state,
        on_startup=startup,
        on_shutdown=shutdown,
        middleware=[observability.RequestObserver],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        logging_config=None,
    )


def asgi_factory() -> Litestar:
    """Entry point for ASGI servers (`granian --factory tuskbase.app:asgi_factory`)."""
    observability.configure_logging(load())
    return create_app()
