"""HTTP surface of the sync service, one router at /sync/v1: `POST /pull` and `POST /push` here (logic in pull.py,
push.py), `/watermelon` (routes_watermelon.py) and `/live` (routes_live.py). Errors are translated once, by the
router's exception handler (http.py); `POST /pull` is also served as a fast path before the framework.

Both take the project key in `apikey` and the user's token in `Authorization: Bearer`, a JSON body, and answer
JSON; errors are `{"code": "SYNCnnn", "message": ..., "details": ...}` (codes in errors.py), never a 500 for bad
input.

    POST /sync/v1/pull  {"client_id": "device-1", "cursor": null, "limit": 1000, "tables": ["todos"]}
      -> {"changes": {"todos": {"created": [...], "updated": [...], "deleted": [ids]}},
          "cursor": "...", "has_more": false, "reset": false}
    POST /sync/v1/push  {"client_id": "device-1", "mutation_id": "m-42", "cursor": "<last pull cursor>",
                         "changes": {"todos": {"created": [...], "updated": [...], "deleted": [ids]}}}
      -> 200 {"applied": true, "rows": N} | 409 {"code": "SYNC110", ..., "details": {"refused": [...]}}
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Response, Router, post

from tuskbase import caller as callers
from tuskbase.caller import Caller, CallerError
from tuskbase.service import ASGIApp, FastPath, Service
from tuskbase.sync import body as sync_body
from tuskbase.sync import metrics, routes_live, routes_watermelon
from tuskbase.sync import pull as pull_module
from tuskbase.sync import push as push_module
from tuskbase.sync.connections import QuickConnections
from tuskbase.sync.errors import BAD_REQUEST, UNAUTHORIZED, SyncError
from tuskbase.sync.http import JSON, caller_of, error_answer, exception_handler, json_object, limited
from tuskbase.sync.limits import ClientGone, SyncLimits

PREFIX = "/sync/v1"
PULL_PATH = PREFIX + "/pull"


async def _pull(state: Any, caller: Caller, body: dict[str, Any], receive: Any) -> bytes:
    """The answer of a pull, from the route or the fast path: under the load limits, cancelled if the client
    disconnects (limits.py)."""
    result = await state.sync_limits.run(caller.user_id, receive, lambda: pull_module.pull(
        state.sync_pool, caller, client_id=body.get("client_id"), cursor=body.get("cursor"),
        limit=body.get("limit"), tables=body.get("tables"), settings=state.settings,
        quick=getattr(state, "sync_quick", None),
    ))
    return result.body()


@post("/pull", media_type=JSON, status_code=200, include_in_schema=False)
async def pull_route(request: Request) -> Response[bytes]:
    caller = caller_of(request)
    body = await json_object(request)
    return Response(await _pull(request.app.state, caller, body, request.receive), media_type=JSON)


@post("/push", media_type=JSON, status_code=200, include_in_schema=False)
async def push_route(request: Request) -> Response[bytes]:
    caller = caller_of(request)
    body = await json_object(request)
    state = request.app.state
    result = await limited(request, caller, lambda: push_module.push(
        state.sync_pool, caller, client_id=body.get("client_id"), mutation_id=body.get("mutation_id"),
        cursor=body.get("cursor"), changes=body.get("changes"), settings=state.settings,
    ))
    return Response(result.body, status_code=result.status, media_type=JSON)


_JSON_HEADERS = [(b"content-type", b"application/json")]


async def _read_body(receive: Any, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), *(headers or ())]})
    await send({"type": "http.response.body", "body": body})


def _pull_fast(app: Litestar) -> ASGIApp:
    """POST /sync/v1/pull before Litestar's router and middleware (as rest/ does for /rest/v1).

    Clients poll this endpoint; most answers are "nothing new" (one round trip to Postgres), so the framework
    stack would be most of the cost. The route above stays the documented one and serves if this shortcut is
    removed. Errors are answered by the same `error_answer` as the router's; request ids, metrics, the access log
    and the body deadline apply as to every request (app.py).
    """
    state = app.state

    async def pull_raw(scope: Any, receive: Any, send: Any) -> None:
        try:
            try:
                caller = callers.identify_raw(state.claims, dict(scope["headers"]))
            except CallerError as error:
                raise SyncError(UNAUTHORIZED, str(error)) from None
            raw = await _read_body(receive, state.settings.max_body_bytes)
            if raw is None:
                raise SyncError(BAD_REQUEST, "the body is missing or too large")
            answer = await _pull(state, caller, sync_body.decode_object(raw, state.settings), receive)
        except ClientGone:
            return  # nobody to answer
        except Exception as error:
            refusal = error_answer(state.settings, error)
            if refusal is None:
                raise
            status, payload, headers = refusal
            await _send(send, status, payload, [(k.encode(), v.encode()) for k, v in headers])
            return
        await _send(send, 200, answer)

    return pull_raw


async def start_sync(app: Any) -> None:
    import asyncpg

    from tuskbase import db

    settings = app.state.settings
    url = db.authenticator_url(settings)
    # Sync has connections of its own, which auth, REST and /ready never wait for, and bounded admission to them.
    app.state.sync_pool = await db.create_sync_pool(settings)
    app.state.sync_limits = SyncLimits.from_settings(settings)
    app.state.sync_quick = QuickConnections(
        lambda: asyncpg.connect(url, server_settings=db.sync_server_settings(settings)),
        settings.sync_pool_max,
    )
    await metrics.start(app)


async def stop_sync(app: Any) -> None:
    await metrics.stop(app)
    quick = getattr(app.state, "sync_quick", None)
    if quick is not None:
        await quick.close()
    pool = getattr(app.state, "sync_pool", None)
    if pool is not None:
        await pool.close()


ROUTER = Router(
    path=PREFIX,
    route_handlers=[pull_route, push_route, *routes_watermelon.ROUTES, *routes_live.ROUTES],
    exception_handlers={Exception: exception_handler},
)
SERVICE = Service("sync", routes=[ROUTER], fast=[FastPath(PULL_PATH, _pull_fast, method="POST")],
                  startup=[start_sync, routes_live.start_live], shutdown=[stop_sync, routes_live.stop_live])
