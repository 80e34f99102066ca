"""Persisted queries: a read registered once under a name, then called by name or by its SHA-256 hash.

Register (service role only):  POST /rest/v1/persisted  {"name": "open_todos", "path": "/todos",
                                                          "query": "select=id,title&done=is.false&order=position"}
                               -> 201 {"name": "open_todos", "hash": "<sha256 of 'GET /todos?query'>"}
Call (any caller, under its own RLS):  GET /rest/v1/persisted/open_todos   or   /persisted/<hash>
    Extra query parameters are appended to the stored ones (e.g. `?list_id=eq.<id>`), so one persisted query
    serves many arguments. A mobile client then sends a short path instead of a long select/embedding URL.

The table `tuskbase.persisted_queries` (sql/0020) is read and written by the API's login role, never through
the request role, so app users cannot list or change it.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, NamedTuple

from tuskbase.caller import Caller
from tuskbase.rest import errors
from tuskbase.rest.errors import ApiError
from tuskbase.rest.pipeline import Pipeline, RestRequest
from tuskbase.rest.pool import FastPool
from tuskbase.rest.respond import JSON, Answer

FIND = "select method, path, query from tuskbase.persisted_queries where name = $1 or hash = $1"
REGISTER = """
insert into tuskbase.persisted_queries (name, hash, method, path, query) values ($1, $2, $3, $4, $5)
on conflict (name) do update set hash = excluded.hash, method = excluded.method, path = excluded.path,
  query = excluded.query, created_at = now()
"""
ANNOUNCE = "select pg_notify('tuskbase_schema', 'persisted')"
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class Stored(NamedTuple):
    method: str
    path: str
    query: str


class Registry:
    """The persisted queries met so far, by name or hash, until `forget` (a schema change, or a registration in
    any API process: the schema listener's channel)."""

    def __init__(self, pool: FastPool) -> None:
        self.pool = pool  # as the login role: app users cannot read or change the table
        self._found: dict[str, Stored] = {}

    def forget(self) -> None:
        self._found.clear()

    async def find(self, name: str) -> Stored | None:
        found = self._found.get(name)
        if found is None:
            async with self.pool.acquire() as conn:
                row = await conn.fetchrow(FIND, name)
            if row is None:
                return None
            found = self._found[name] = Stored(row["method"], row["path"], row["query"])
        return found

    async def register(self, name: str, path: str, query: str) -> str:
        hashed = digest("GET", path, query)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(REGISTER, name, hashed, "GET", path, query)
            # Every API process forgets its cached entries (the schema listener clears them on this channel).
            await conn.execute(ANNOUNCE)
        self.forget()
        return hashed


def digest(method: str, path: str, query: str) -> str:
    return hashlib.sha256(f"{method} {path}?{query}".encode()).hexdigest()


async def run(service: Pipeline, registry: Registry, request: RestRequest, caller: Caller, receive: Any) -> Answer:
    """`request.path` is the name (or hash) below /persisted; its query string is appended to the stored one."""
    method, name, extra = request.method, request.path, request.query_string
    if name == "" and method == "POST":
        return await register(service, registry, caller, await service.body(receive, request.headers))
    if method not in ("GET", "HEAD") or not NAME.match(name):
        raise ApiError(404, errors.NO_PERSISTED_QUERY, f"No persisted query {name!r}")
    stored = await registry.find(name)
    if stored is None:
        raise ApiError(404, errors.NO_PERSISTED_QUERY, f"No persisted query {name!r}",
                       None, "Register it with POST /rest/v1/persisted (service role)")
    query_string = stored.query.encode() + (b"&" + extra if stored.query and extra else extra)
    return await service.sub_request(RestRequest(method, stored.path, query_string, request.headers), caller)


async def register(service: Pipeline, registry: Registry, caller: Caller, raw: bytes) -> Answer:
    if caller.role != "service_role":
        raise ApiError(403, "42501", "Only the service role registers persisted queries")
    body = service.json_body(raw, {}, required=True)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not isinstance(body.get("path"), str):
        raise ApiError(400, errors.INVALID_BODY, 'A persisted query is {"name", "path", "query"}')
    name, path, query = body["name"], "/" + body["path"].strip("/"), str(body.get("query", ""))
    if not NAME.match(name):
        raise ApiError(400, errors.INVALID_BODY, "Names are 1 to 100 letters, digits, '_', '.' or '-'")
    # Compile it now: a query that does not parse or names unknown tables is refused at registration.
    service.check_read(path.strip("/"), query.encode())
    hashed = await registry.register(name, path, query)
    return Answer(201, json.dumps({"name": name, "hash": hashed}).encode(), [(b"content-type", JSON)])
