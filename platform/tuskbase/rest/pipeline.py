"""The interface batch.py and persisted.py run REST requests through: `RestService` (handler.py) implements
`Pipeline`, and a request inside another one is a `RestRequest`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    import asyncpg

    from tuskbase.caller import Caller
    from tuskbase.config import Settings
    from tuskbase.rest.errors import ApiError
    from tuskbase.rest.pool import FastPool
    from tuskbase.rest.respond import Answer


class RestRequest(NamedTuple):
    """A REST request as the pipeline takes it: the path below /rest/v1, the raw query string and body."""

    method: str
    path: str
    query_string: bytes
    headers: dict[bytes, bytes]
    body: bytes = b""


class Pipeline(Protocol):
    settings: Settings
    pool: FastPool  # as the login role, for the platform's own tables (persisted queries)

    async def sub_request(self, request: RestRequest, caller: Caller,
                          conn: asyncpg.Connection | None = None) -> Answer:
        """`request` through the whole pipeline as `caller`, inside `conn`'s transaction when given."""

    def check_read(self, path: str, query_string: bytes) -> None:
        """Refuse a read that does not parse or names what the schema does not hold (ApiError)."""

    def error(self, err: ApiError) -> Answer:
        """The answer of an error, as a plain request would get it."""

    def json_body(self, raw: bytes, headers: dict[bytes, bytes], required: bool) -> Any:
        """The JSON of a body, or the PostgREST error for one that is not."""

    async def body(self, receive: Any, headers: dict[bytes, bytes]) -> bytes:
        """The request body, bounded by the body limit."""
