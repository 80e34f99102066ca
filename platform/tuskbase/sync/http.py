"""What every sync route shares: the caller, the JSON body, the load limits, and the one translation of errors
into answers (`error_answer`), used by the router's exception handler and by the fast path of /sync/v1/pull alike.

Errors are `{"code": "SYNCnnn", "message": ..., "details": ...}` (codes in errors.py), never a 500 for bad input;
a database that is starting, stopping or unreachable is SYNC140 with Retry-After, as are the load refusals
(limits.py). A request whose client went away is logged as 499, answered to nobody.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException
from litestar.exceptions.responses import create_exception_response

from tuskbase.caller import Caller, CallerError, identify
from tuskbase.db import is_unavailable
from tuskbase.sync import body as sync_body
from tuskbase.sync.errors import UNAUTHORIZED, UNAVAILABLE, SyncError
from tuskbase.sync.limits import ClientGone, SyncLimits

log = logging.getLogger("tuskbase.sync")
JSON = MediaType.JSON
# What a request whose client went away is logged with (nginx's "client closed request"); nobody receives it.
CLIENT_GONE = 499


def caller_of(request: Request) -> Caller:
    """The caller of a sync request, or SYNC105."""
    try:
        return identify(request.app.state.claims, request.headers.get("apikey"), request.headers.get("authorization"))
    except CallerError as error:
        raise SyncError(UNAUTHORIZED, str(error)) from None


async def json_object(request: Request) -> dict[str, Any]:
    return sync_body.decode_object(await request.body(), request.app.state.settings)


def limited(request: Request, caller: Caller, work: Any) -> Any:
    """`work()` under the sync load limits, cancelled if the client disconnects (see limits.py)."""
    limits: SyncLimits = request.app.state.sync_limits
    return limits.run(caller.user_id, request.receive, work)


def error_answer(settings: Any, error: Exception) -> tuple[int, bytes, list[tuple[str, str]]] | None:
    """(status, JSON body, headers) of a sync error or an unavailable database; None for anything else (a bug,
    or the framework's own answer such as 413), which the caller lets through."""
    if isinstance(error, SyncError):
        headers = [("retry-after", str(error.retry_after))] if error.retry_after is not None else []
        return error.status, msgspec.json.encode(error.to_json()), headers
    if is_unavailable(error):
        body = msgspec.json.encode(SyncError(UNAVAILABLE, "the database is unavailable; retry shortly").to_json())
        return UNAVAILABLE[1], body, [("retry-after", str(settings.unavailable_retry_after))]
    return None


def exception_handler(request: Request, error: Exception) -> Response[Any]:
    """The sync router's one exception handler."""
    if isinstance(error, ClientGone):
        return Response(b"", status_code=CLIENT_GONE)
    answer = error_answer(request.app.state.settings, error)
    if answer is None:
        if not isinstance(error, HTTPException):
            log.exception("sync request failed", exc_info=error)
        return create_exception_response(request, error)
    status, body, headers = answer
    return Response(body, status_code=status, media_type=JSON, headers=dict(headers))
