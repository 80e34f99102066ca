"""HTTP surface of the sync service: `POST /sync/v1/pull` and `POST /sync/v1/push` (logic in pull.py, push.py).

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

import logging
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, post

from tuskbase.db import is_unavailable
from tuskbase.sync import body as sync_body
from tuskbase.sync import metrics
from tuskbase.sync import pull as pull_module
from tuskbase.sync import push as push_module
from tuskbase.sync.errors import BAD_REQUEST, UNAUTHORIZED, UNAVAILABLE, SyncError
from tuskbase.sync.limits import ClientGone, SyncLimits
from tuskbase.tokens import TokenError

log = logging.getLogger("tuskbase.sync")
JSON = MediaType.JSON
# What a request whose client went away is logged with (nginx's "client closed request"); nobody receives it.
CLIENT_GONE = 499


def error_response(error: SyncError) -> Response[bytes]:
    headers = {"retry-after": str(error.retry_after)} if error.retry_after is not None else None
    return Response(msgspec.json.encode(error.to_json()), status_code=error.status, media_type=JSON,
                    headers=headers)


_error = error_response


def gone_response() -> Response[bytes]:
    return Response(b"", status_code=CLIENT_GONE)


def limited(request: Request, claims: dict[str, Any], work: Any) -> Any:
    """`work()` under the sync load limits, cancelled if the client disconnects (see limits.py)."""
    limits: SyncLimits = request.app.state.sync_limits
    return limits.run(pull_module.user_key(claims), request.receive, work)


def unavailable_answer(settings: Any, error: Exception) -> tuple[bytes, str]:
    """Body and Retry-After of the 503 for a database that is starting, stopping or unreachable; any other
    error is raised again (a bug stays a logged 500)."""
    if not is_unavailable(error):
        raise error
    body = msgspec.json.encode(SyncError(UNAVAILABLE, "the database is unavailable; retry shortly").to_json())
    return body, str(settings.unavailable_retry_after)


def unavailable_response(request: Request, error: Exception) -> Response[bytes]:
    body, retry_after = unavailable_answer(request.app.state.settings, error)
    return Response(body, status_code=UNAVAILABLE[1], media_type=JSON, headers={"retry-after": retry_after})


async def _identity(request: Request) -> tuple[dict[str, Any], str]:
    try:
        return request.app.state.claims.from_headers(request.headers.get("apikey"),
                                                     request.headers.get("authorization"))
    except TokenError as error:
        raise SyncError(UNAUTHORIZED, str(error)) from None


async def _body(request: Request) -> dict[str, Any]:
    return sync_body.decode_object(await request.body(), request.app.state.settings)


@post("/sync/v1/pull", media_type=JSON, status_code=200, include_in_schema=False)
async def pull_route(request: Request) -> Response[bytes]:
    try:
        claims, claims_json = await _identity(request)
        body = await _body(request)
        state = request.app.state
        result = await limited(request, claims, lambda: pull_module.pull(
            state.sync_pool, claims, claims_json, client_id=body.get("client_id"), cursor=body.get("cursor"),
            limit=body.get("limit"), tables=body.get("tables"), settings=state.settings,
            quick=getattr(state, "sync_quick", None),
        ))
    except SyncError as error:
        return _error(error)
    except ClientGone:
        return gone_response()
    except Exception as error:
        return unavailable_response(request, error)
    return Response(result.body(), media_type=JSON)


@post("/sync/v1/push", media_type=JSON, status_code=200, include_in_schema=False)
async def push_route(request: Request) -> Response[bytes]:
    try:
        claims, claims_json = await _identity(request)
        body = await _body(request)
        state = request.app.state
        result = await limited(request, claims, lambda: push_module.push(
            state.sync_pool, claims, claims_json, client_id=body.get("client_id"),
            mutation_id=body.get("mutation_id"), cursor=body.get("cursor"), changes=body.get("changes"),
            settings=state.settings,
        ))
    except SyncError as error:
        return _error(error)
    except ClientGone:
        return gone_response()
    except Exception as error:
        return unavailable_response(request, error)
    return Response(result.body, status_code=result.status, media_type=JSON)


PULL_PATH = "/sync/v1/pull"
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


def _serve_pull_directly(app: Any) -> None:
    """Serve POST /sync/v1/pull before Litestar's router and middleware (as rest/ does for /rest/v1).

    Clients poll this endpoint; most answers are "nothing new" (one round trip to Postgres), so the framework
    stack would be most of the cost. The Litestar route above stays the documented one and serves if this
    shortcut is removed. Request ids, metrics, the access log and the body deadline still apply: app.py wraps
    this dispatch in them.
    """
    state = app.state
    inner = app.asgi_handler

    async def pull_raw(scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        try:
            apikey, authorization = headers.get(b"apikey"), headers.get(b"authorization")
            try:
                claims, claims_json = state.claims.from_headers(apikey and apikey.decode("latin-1"),
                                                                authorization and authorization.decode("latin-1"))
            except TokenError as error:
                raise SyncError(UNAUTHORIZED, str(error)) from None
            raw = await _read_body(receive, state.settings.max_body_bytes)
            if raw is None:
                raise SyncError(BAD_REQUEST, "the body is missing or too large")
            body = sync_body.decode_object(raw, state.settings)
            result = await state.sync_limits.run(pull_module.user_key(claims), receive, lambda: pull_module.pull(
                state.sync_pool, claims, claims_json, client_id=body.get("client_id"), cursor=body.get("cursor"),
                limit=body.get("limit"), tables=body.get("tables"), settings=state.settings,
                quick=state.sync_quick,
            ))
        except SyncError as error:
            retry = [(b"retry-after", str(error.retry_after).encode())] if error.retry_after is not None else None
            await _send(send, error.status, msgspec.json.encode(error.to_json()), retry)
            return
        except ClientGone:
            return  # nobody to answer
        except Exception as error:
            body, retry_after = unavailable_answer(state.settings, error)
            await _send(send, UNAVAILABLE[1], body, [(b"retry-after", retry_after.encode())])
            return
        await _send(send, 200, result.body())

    async def dispatch(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == PULL_PATH and scope["method"] == "POST":
            await pull_raw(scope, receive, send)
        else:
            await inner(scope, receive, send)

    app.asgi_handler = dispatch


async def start_sync(app: Any) -> None:
    import asyncpg

    from tuskbase import db

    settings = app.state.settings
    url = db.authenticator_url(settings)
    # Sync has connections of its own, which auth, REST and /ready never wait for, and bounded admission to them.
    app.state.sync_pool = await db.create_sync_pool(settings)
    app.state.sync_limits = SyncLimits.from_settings(settings)
    app.state.sync_quick = pull_module.QuickConnections(
        lambda: asyncpg.connect(url, server_settings=db.sync_server_settings(settings)),
        settings.sync_pool_max,
    )
    await metrics.start(app)
    _serve_pull_directly(app)


async def stop_sync(app: Any) -> None:
    await metrics.stop(app)
    quick = getattr(app.state, "sync_quick", None)
    if quick is not None:
        await quick.close()
    pool = getattr(app.state, "sync_pool", None)
    if pool is not None:
        await pool.close()


ROUTES: list[Any] = [pull_route, push_route]
STARTUP = [start_sync]
SHUTDOWN = [stop_sync]
