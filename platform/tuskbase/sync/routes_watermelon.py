"""WatermelonDB's sync endpoint, `/sync/v1/watermelon` (logic in watermelon.py).

    GET  /sync/v1/watermelon?last_pulled_at=<timestamp>&schema_version=<n>&migration=<json>&limit=<n>
      -> {"changes": {table: {"created": [...], "updated": [...], "deleted": [ids]}}, "timestamp": <number>,
          "has_more": false}                      (plus "experimentalStrategy": "replacement" after a reset)
    POST /sync/v1/watermelon?last_pulled_at=<timestamp>   {"changes": {...}, "lastPulledAt": <timestamp>}
      -> 200 {} | 409 conflict (pull, then push again) | 400 / 403, nothing applied

`apikey` carries the project key and `Authorization: Bearer` the user's token, as everywhere. Errors are
`{"code": "SYNCnnn", "message": ..., "details": ...}`, never a 500 for bad input.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get, post

from tuskbase.sync import body as sync_body
from tuskbase.sync import watermelon
from tuskbase.sync.errors import BAD_RECORD, UNAUTHORIZED, SyncError
from tuskbase.sync.limits import ClientGone
from tuskbase.sync.routes import error_response, gone_response, limited, unavailable_response
from tuskbase.tokens import TokenError

JSON = MediaType.JSON


_error = error_response


def _identity(request: Request) -> tuple[dict[str, Any], str]:
    try:
        return request.app.state.claims.from_headers(request.headers.get("apikey"),
                                                     request.headers.get("authorization"))
    except TokenError as error:
        raise SyncError(UNAUTHORIZED, str(error)) from None


@get("/sync/v1/watermelon", media_type=JSON, include_in_schema=False)
async def watermelon_pull(request: Request) -> Response[bytes]:
    try:
        claims, claims_json = _identity(request)
        state = request.app.state
        answer = await limited(request, claims, lambda: watermelon.pull(
            state.sync_pool, claims, claims_json, request.query_params, state.settings))
    except SyncError as error:
        return _error(error)
    except ClientGone:
        return gone_response()
    except Exception as error:
        return unavailable_response(request, error)
    return Response(answer.body(), media_type=JSON)


@post("/sync/v1/watermelon", media_type=JSON, status_code=200, include_in_schema=False)
async def watermelon_push(request: Request) -> Response[bytes]:
    try:
        claims, claims_json = _identity(request)
        state = request.app.state
        body = sync_body.decode(await request.body(), state.settings, kind=BAD_RECORD)
        answer = await limited(request, claims, lambda: watermelon.push(
            state.sync_pool, claims, claims_json, request.query_params, body, state.settings))
    except SyncError as error:
        return _error(error)
    except ClientGone:
        return gone_response()
    except Exception as error:
        return unavailable_response(request, error)
    return Response(answer, media_type=JSON)


ROUTES = [watermelon_pull, watermelon_push]
