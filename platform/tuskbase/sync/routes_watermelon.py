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

from litestar import Request, Response, get, post

from tuskbase.sync import body as sync_body
from tuskbase.sync import watermelon
from tuskbase.sync.errors import BAD_RECORD
from tuskbase.sync.http import JSON, caller_of, limited


@get("/watermelon", media_type=JSON, include_in_schema=False)
async def watermelon_pull(request: Request) -> Response[bytes]:
    caller = caller_of(request)
    state = request.app.state
    answer = await limited(request, caller, lambda: watermelon.pull(
        state.sync_pool, caller, request.query_params, state.settings))
    return Response(answer.body(), media_type=JSON)


@post("/watermelon", media_type=JSON, status_code=200, include_in_schema=False)
async def watermelon_push(request: Request) -> Response[bytes]:
    caller = caller_of(request)
    state = request.app.state
    body = sync_body.decode(await request.body(), state.settings, kind=BAD_RECORD)
    answer = await limited(request, caller, lambda: watermelon.push(
        state.sync_pool, caller, request.query_params, body, state.settings))
    return Response(answer, media_type=JSON)


ROUTES = [watermelon_pull, watermelon_push]
