"""HTTP surface of the rest service: one raw ASGI mount at /rest/v1 (see handler.py for why it is raw), served as a
fast path before Litestar's router and middleware (`tuskbase.service.FastPath`); the mount stays the documented
route, and serves if the fast path is removed. Errors are translated once, in `RestService.__call__`."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Litestar, asgi

from tuskbase import db
from tuskbase.rest.handler import PREFIX, RestService
from tuskbase.rest.pool import FastPool
from tuskbase.schema import SchemaHolder
from tuskbase.service import ASGIApp, FastPath, Service


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
    app.state.rest = RestService(settings, pool, holder, app.state.claims)


def _service_of(app: Litestar) -> ASGIApp:
    # On this 2-core machine Litestar's stack costs about as much Python per request as the REST pipeline itself.
    return app.state.rest


async def stop_rest(app: Litestar) -> None:
    holder = getattr(app.state, "schema", None)
    if holder is not None:
        await holder.close()
    service = getattr(app.state, "rest", None)
    if service is not None:
        await service.pool.close()


SERVICE = Service("rest", routes=[rest_v1], fast=[FastPath(PREFIX, _service_of, prefix=True)],
                  startup=[start_rest], shutdown=[stop_rest])
