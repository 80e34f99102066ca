"""WatermelonDB's sync endpoint, `/sync/v1/watermelon` (logic in watermelon.py; errors answered by the sync router).

    GET  /sync/v1/watermelon?last_pulled_at=<timestamp>&schema_version=<n>&migration=<json>&limit=<n>
      -> {"changes": {table: {"created": [...], "updated": [...], "deleted": [ids]}}, "timestamp": <number>,
          "has_more": false}                      (plus "experimentalStrategy": "replacement" after a reset)
    POST /sync/v1/watermelon?last_pulled_at=<timestamp>   {"changes": {...}, "lastPulledAt": <timestamp>}
      -> 200 {} | 409 conflict (pull, then push again) | 400 / 403, nothing applied

`apikey` carries the project key and `Authorization: Bearer` the user's token, as everywhere. Errors are
`{"code": "SYNCnnn", "message": ..., "details": ...}`, never a 500 for bad input.
"""

from __future__ import annotations

import msgspec
from litestar import Request, Response, get, post

from tuskbase.sync import watermelon
from tuskbase.sync.errors import BAD_RECORD, SyncError
from tuskbase.sync.http import JSON, caller_of


@get("/watermelon", media_type=JSON, include_in_schema=False)
async def watermelon_pull(request: Request) -> Response[bytes]:
    caller = caller_of(request)
    state = request.app.state
    answer = await watermelon.pull(state.pool, caller, request.query_params, state.settings)
    return Response(answer.body(), media_type=JSON)


@post("/watermelon", media_type=JSON, status_code=200, include_in_schema=False)
async def watermelon_push(request: Request) -> Response[bytes]:
    caller = caller_of(request)
    try:
        body = msgspec.json.decode(await request.body())
    except msgspec.DecodeError:
        raise SyncError(BAD_RECORD, "the body must be JSON") from None
    state = request.app.state
    answer = await watermelon.push(state.pool, caller, request.query_params, body, state.settings)
    return Response(answer, media_type=JSON)


ROUTES = [watermelon_pull, watermelon_push]
