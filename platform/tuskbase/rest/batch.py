"""`POST /rest/v1/batch`: many REST requests in one round trip, for mobile networks where latency dominates.

Body:   {"transaction": false, "requests": [{"method": "GET", "path": "/todos", "query": "select=id&limit=5",
                                             "headers": {"Prefer": "count=exact"}, "body": {...}}, ...]}
Answer: {"responses": [{"status": 200, "headers": {"content-range": "0-4/*"}, "body": [...]}, ...]}

Each sub-request goes through the same pipeline as a plain request, as the same caller (the batch's token).
With `"transaction": true` all of them run in one transaction: the first failure rolls everything back, the
failed answer is reported and the later requests answer 424 (failed dependency) without running.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from tuskbase import caller as callers
from tuskbase.caller import Caller
from tuskbase.rest import errors
from tuskbase.rest.errors import ApiError
from tuskbase.rest.pipeline import Pipeline, RestRequest
from tuskbase.rest.respond import JSON, Answer

ALLOWED_HEADERS = frozenset({"prefer", "accept", "accept-profile", "content-profile", "range", "range-unit",
                             "content-type"})


class _Rollback(Exception):
    """Leaves the batch transaction without committing."""


def _invalid(message: str) -> ApiError:
    return ApiError(400, errors.BATCH_INVALID, message, None,
                    'The body is {"transaction": bool, "requests": [{"method", "path", "query", "headers", "body"}]}')


def _sub_requests(body: Any, limit: int) -> tuple[bool, list[dict[str, Any]]]:
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise _invalid("A batch is a JSON object with a list of requests")
    requests = body["requests"]
    if not requests or len(requests) > limit:
        raise _invalid(f"A batch holds 1 to {limit} requests")
    transaction = body.get("transaction", False)
    if not isinstance(transaction, bool):
        raise _invalid("transaction must be true or false")
    for item in requests:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise _invalid("Each request is an object with at least a path")
        if not isinstance(item.get("method", "GET"), str) or not isinstance(item.get("headers", {}), dict):
            raise _invalid("method is a string and headers an object")
        query = item.get("query", "")
        if not isinstance(query, str | dict):
            raise _invalid("query is a query string or an object of parameters")
    return transaction, requests


def _request(item: dict[str, Any]) -> RestRequest:
    method = item.get("method", "GET").upper()
    path = item["path"]
    query = item.get("query", "")
    if "?" in path:
        path, _, inline = path.partition("?")
        query = query or inline
    query_string = (urlencode(query) if isinstance(query, dict) else query).encode()
    headers = {str(k).lower().encode(): str(v).encode() for k, v in item.get("headers", {}).items()
               if str(k).lower() in ALLOWED_HEADERS}
    raw = b"" if "body" not in item else json.dumps(item["body"]).encode()
    return RestRequest(method, path, query_string, headers, raw)


def _render(answer: Answer) -> dict[str, Any]:
    headers = {k.decode(): v.decode("latin-1") for k, v in answer.headers if k != b"content-type"}
    body: Any = None
    if answer.body:
        try:
            body = json.loads(answer.body)
        except ValueError:
            body = answer.body.decode("utf-8", "replace")
    return {"status": answer.status, "headers": headers, "body": body}


async def run(service: Pipeline, caller: Caller, raw: bytes) -> Answer:
    body = service.json_body(raw, {}, required=True)
    transaction, requests = _sub_requests(body, service.settings.rest_batch_max)
    responses: list[dict[str, Any]] = []
    if not transaction:
        for item in requests:
            try:
                answer = await service.sub_request(_request(item), caller)
            except ApiError as err:
                answer = service.error(err)
            responses.append(_render(answer))
    else:
        try:
            async with callers.session(service.pool, caller, readonly=False) as conn, conn.transaction():
                for index, item in enumerate(requests):
                    try:
                        answer = await service.sub_request(_request(item), caller, conn)
                    except ApiError as err:
                        answer = service.error(err)
                    responses.append(_render(answer))
                    if answer.status >= 400:
                        skipped = {"status": 424, "headers": {}, "body": {
                            "code": errors.BATCH_INVALID, "message": f"Not run: request {index} failed",
                            "details": None, "hint": None}}
                        responses.extend(dict(skipped) for _ in requests[index + 1:])
                        raise _Rollback
        except _Rollback:
            pass
    return Answer(200, json.dumps({"responses": responses}).encode(), [(b"content-type", JSON)])
