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

from tuskbase.sync import metrics
from tuskbase.sync import pull as pull_module
from tuskbase.sync import push as push_module
from tuskbase.sync.errors import BAD_REQUEST, UNAUTHORIZED, SyncError
from tuskbase.tokens import TokenError

log = logging.getLogger("tuskbase.sync")
JSON = MediaType.JSON


def _error(error: SyncError) -> Response[bytes]:
    return Response(msgspec.json.encode(error.to_json()), status_code=error.status, media_type=JSON)


async def _identity(request: Request) -> tuple[dict[str, Any], str]:
    try:
        return request.app.state.claims.from_headers(request.headers.get("apikey"),
                                                     request.headers.get("authorization"))
    except TokenError as error:
        raise SyncError(UNAUTHORIZED, str(error)) from None


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        raise SyncError(BAD_REQUEST, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise SyncError(BAD_REQUEST, "the body must be a JSON object")
    return body


@post("/sync/v1/pull", media_type=JSON, status_code=200, include_in_schema=False)
async def pull_route(request: Request) -> Response[bytes]:
    try:
        claims, claims_json = await _identity(request)
        body = await _body(request)
        state = request.app.state
        result = await pull_module.pull(
            state.pool, claims, claims_json, client_id=body.get("client_id"), cursor=body.get("cursor"),
            limit=body.get("limit"), tables=body.get("tables"), settings=state.settings,
        )
    except SyncError as error:
        return _error(error)
    return Response(result.body(), media_type=JSON)


@post("/sync/v1/push", media_type=JSON, status_code=200, include_in_schema=False)
async def push_route(request: Request) -> Response[bytes]:
    try:
        claims, claims_json = await _identity(request)
        body = await _body(request)
        state = request.app.state
        result = await push_module.push(
            state.pool, claims, claims_json, client_id=body.get("client_id"), mutation_id=body.get("mutation_id"),
            cursor=body.get("cursor"), changes=body.get("changes"), settings=state.settings,
        )
    except SyncError as error:
        return _error(error)
    return Response(result.body, status_code=result.status, media_type=JSON)


ROUTES: list[Any] = [pull_route, push_route]
STARTUP = [metrics.start]
SHUTDOWN = [metrics.stop]
