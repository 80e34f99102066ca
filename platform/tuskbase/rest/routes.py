"""HTTP surface of the rest service: one raw ASGI mount at /rest/v1 (see handler.py for why it is raw)."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Litestar, asgi

from tuskbase import db
from tuskbase.rest.handler import PREFIX, RestService
from tuskbase.rest.pool import FastPool
from tuskbase.schema import SchemaHolder


@asgi(PREFIX, is_mount=True, copy_scope=False)
async def rest_v1(scope: Any, receive: Any, send: Any) -> None:
    await scope["app"].state.rest(scope, receive, send)


async def start_rest(app: Litestar) -> None:
    settings = app.state.settings
    holder = SchemaHolder(settings.rest_schema_list)
    await holder.listen(app.state.pool, lambda: asyncpg.connect(db.authenticator_url(settings)))
    app.state.schema = holder
    url = db.authenticator_url(settings)
    pool = FastPool(lambda: asyncpg.connect(url, statement_cache_size=1024,
                                            server_settings={"application_name": "tuskbase-rest"}),
                    settings.db_pool_max)
    app.state.rest = service = RestService(settings, pool, holder, app.state.claims)
    _serve_directly(app, service)


def _serve_directly(app: Litestar, service: RestService) -> None:
    """Route /rest/v1 to the service before Litestar's router and middleware stack.

    On this 2-core machine the stack costs about as much Python per request as the REST pipeline itself; the
    mount above stays the documented route (and serves if this shortcut is removed). Request ids, access
    metrics, the access log and the body deadline still apply: app.py wraps this dispatch in them.
    """
    router = app.asgi_handler

    async def dispatch(scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"]
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            await service(scope, receive, send)
        else:
            await router(scope, receive, send)

    app.asgi_handler = dispatch


async def stop_rest(app: Litestar) -> None:
    holder = getattr(app.state, "schema", None)
    if holder is not None:
        await holder.close()
    service = getattr(app.state, "rest", None)
    if service is not None:
        await service.pool.close()


ROUTES: list[Any] = [rest_v1]
STARTUP = [start_rest]
SHUTDOWN = [stop_rest]
