"""The API application: `create_app()` wires settings, the database pool and every service's routes.

SERVICES below is the table of contents of the API: each service's package exports a `tuskbase.service.Service`
in its routes.py (its routes, the fast ASGI paths it serves before the framework, its startup and shutdown
hooks). `route_table(app)` lists the whole HTTP surface; ARCHITECTURE.md, "How a request reaches its handler",
shows it.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from litestar import Litestar, MediaType, Request, Response, Router, get
from litestar.datastructures import State

from tuskbase import db, migrate, observability, serving
from tuskbase.auth.routes import SERVICE as AUTH
from tuskbase.config import Settings, load
from tuskbase.flags.routes import SERVICE as FLAGS
from tuskbase.insights.routes import SERVICE as INSIGHTS
from tuskbase.push.routes import SERVICE as PUSH
from tuskbase.rest.routes import SERVICE as REST
from tuskbase.service import ASGIApp, FastPath, Service
from tuskbase.storage.routes import SERVICE as STORAGE
from tuskbase.sync.routes import SERVICE as SYNC
from tuskbase.tokens import ClaimsCache, Signer

SERVICES: tuple[Service, ...] = (AUTH, REST, SYNC, STORAGE, PUSH, FLAGS, INSIGHTS)
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
    observability.sample_pools({"api": state.get("pool"), "rest": rest.pool if rest is not None else None,
                                "sync": state.get("sync_pool")})
    return Response(observability.render_metrics(), media_type=observability.METRICS_CONTENT_TYPE)


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class Dispatcher:
    """The app's one ASGI dispatch in front of Litestar: a fast path of a service (bound once the services have
    started) or, for everything else and until then, Litestar's router with its middleware. It runs inside the
    request observer and the body deadline (`observed`), which every request passes."""

    def __init__(self, router: ASGIApp) -> None:
        self.router = router
        self.paths: list[tuple[FastPath, ASGIApp]] = []

    def bind(self, app: Litestar, services: tuple[Service, ...]) -> None:
        self.paths = [(fast, fast.handler(app)) for service in services for fast in service.fast]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            for fast, handler in self.paths:
                if fast.matches(path, method):
                    await handler(scope, receive, send)
                    return
        await self.router(scope, receive, send)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load()
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

    async def serve_fast_paths(app: Litestar) -> None:
        dispatcher.bind(app, SERVICES)

    handlers: list[Any] = [health, ready, metrics]
    startup: list[Any] = [open_pool]
    shutdown: list[Any] = []
    for service in SERVICES:
        handlers.extend(service.routes)
        startup.extend(service.startup)
        shutdown.extend(service.shutdown)
    startup.append(serve_fast_paths)
    shutdown.append(close_pool)

    app = Litestar(
        route_handlers=handlers,
        state=state,
        on_startup=startup,
        on_shutdown=shutdown,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        logging_config=None,
    )
    dispatcher = Dispatcher(app.asgi_handler)
    app.asgi_handler = observed(dispatcher, settings, state.claims)
    return app


def observed(handler: ASGIApp, settings: Settings, claims: ClaimsCache) -> ASGIApp:
    """Every request (the fast paths included) gets an id, metrics and its access-log line, outside the body
    deadline so a 408 is counted and logged as one."""
    return observability.RequestObserver(serving.BodyDeadline(handler, settings), log_requests=settings.access_log,
                                         subject_of=lambda scope: _subject(claims, scope))


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


def route_table(app: Litestar) -> list[tuple[str, str, str, str]]:
    """(service, methods, path, handlers) of every route of `app`, a fast path marked: the whole HTTP surface."""
    owners: dict[Any, str] = {}
    for service in SERVICES:
        for route in service.routes:
            for handler in _handlers(route):
                owners[handler.fn] = service.name
    fast = {fast.path for service in SERVICES for fast in service.fast}
    rows = []
    for route in app.routes:
        handlers = _handlers(route)
        service = next((owners[h.fn] for h in handlers if h.fn in owners), "app")
        methods = sorted({m for h in handlers for m in getattr(h, "http_methods", ())} - {"OPTIONS"}) or (
            ["WEBSOCKET"] if type(route).__name__ == "WebSocketRoute" else ["*"])
        names = ", ".join(sorted(h.fn.__name__ for h in handlers))
        if route.path in fast:
            names += " (and a fast path)"
        rows.append((service, " ".join(methods), route.path, names))
    return rows


def _handlers(route: Any) -> list[Any]:
    """The handlers of a Litestar router, route or handler."""
    if isinstance(route, Router):
        return [handler for inner in route.routes for handler in _handlers(inner)]
    handlers = route.route_handlers if hasattr(route, "route_handlers") else [getattr(route, "route_handler", route)]
    return [h for h in handlers if not h.fn.__module__.startswith("litestar")]  # not the OPTIONS it made


def asgi_factory() -> Litestar:
    """Entry point for ASGI servers (`granian --factory tuskbase.app:asgi_factory`)."""
    settings = load()
    observability.configure_logging(settings)
    serving.raise_file_limit(settings)
    return create_app(settings)
