"""HTTP surface of the rest service: one raw ASGI mount at /rest/v1 (see handler.py for why it is raw)."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Litestar, asgi

from tuskbase import db
from tuskbase.rest.handler import RestService
from tuskbase.schema import SchemaHolder


@asgi("/rest/v1", is_mount=True, copy_scope=False)
async def rest_v1(scope: Any, receive: Any, send: Any) -> None:
    await scope["app"].state.rest(scope, receive, send)


async def start_rest(app: Litestar) -> None:
    settings = app.state.settings
    holder = SchemaHolder(settings.rest_schema_list)
    await holder.listen(app.state.pool, lambda: asyncpg.connect(db.authenticator_url(settings)))
    app.state.schema = holder
    app.state.rest = RestService(settings, app.state.pool, holder, app.state.claims)


async def stop_rest(app: Litestar) -> None:
    holder = getattr(app.state, "schema", None)
    if holder is not None:
        await holder.close()


ROUTES: list[Any] = [rest_v1]
STARTUP = [start_rest]
SHUTDOWN = [stop_rest]
