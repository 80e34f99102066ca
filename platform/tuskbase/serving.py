"""How the API is served to clients that may be hostile: the server's connection options and the body deadline.

A client that opens a connection and sends nothing, or announces a body and trickles it, holds one of the
server's connections for as long as it is allowed to. Three bounds keep such clients from taking them all:

- granian's header-read timeout drops a connection whose request headers do not arrive in time, counted from
  when it starts waiting (a new connection or an idle keep-alive one). Under HTTP/1 only: in `auto` mode the
  server first sniffs the protocol, and that read has no timeout at all.
- `BodyDeadline` (an ASGI middleware, granian has no body timeout) answers 408 to a request whose body is not
  in within `body_read_timeout_s`, in the format of the surface it was sent to.
- the connection cap (granian's backpressure, per worker) keeps the process within its file descriptors, and
  `connection_headroom` of it is kept from requests still sending a body: when the others are all taken, the
  request that has been sending longest is answered 408, so a flood of slow bodies never starves new clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from tuskbase.config import Settings

log = logging.getLogger("tuskbase.serving")

REQUEST_TIMEOUT = 408
SYNC_CODE = "SYNC141"  # sync's own code for a body not received in time (README, sync error table)
GENERIC_CODE = "TUSK408"
MESSAGE = "the request body was not received in time"


def granian_options(settings: Settings) -> list[str]:
    """Command-line options of granian for the connection bounds of `settings`."""
    options = [
        "--http", settings.http_version,
        "--backlog", str(settings.backlog),
        "--backpressure", str(settings.max_connections),
    ]
    if settings.http_version != "2":
        options += ["--http1-header-read-timeout", str(max(1, round(settings.header_read_timeout_s * 1000)))]
        options.append("--http1-keep-alive" if settings.keepalive else "--no-http1-keep-alive")
    return options


def _has_body(scope: dict[str, Any]) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return value.strip() not in (b"0", b"")
        if key == b"transfer-encoding":
            return True
    return False


def timeout_body(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The 408 answer in the format of the surface `path` belongs to."""
    if path.startswith("/rest/"):
        body: dict[str, Any] = {"code": GENERIC_CODE, "details": None, "hint": None, "message": MESSAGE}
    elif path.startswith("/auth/"):
        new_format = any(k == b"x-supabase-api-version" and v >= b"2024-01-01" and len(v) == 10 for k, v in headers)
        body = ({"code": "request_timeout", "message": MESSAGE} if new_format
                else {"code": REQUEST_TIMEOUT, "error_code": "request_timeout", "msg": MESSAGE})
    elif path.startswith("/sync/"):
        body = {"code": SYNC_CODE, "message": MESSAGE}
    else:
        body = {"code": GENERIC_CODE, "message": MESSAGE}
    extra = [(b"x-sb-error-code", b"request_timeout")] if path.startswith("/auth/") else []
    return json.dumps(body).encode(), [(b"content-type", b"application/json"), (b"connection", b"close"), *extra]


class _Reader:
    """A request whose body is still coming: its deadline can be brought forward to now (evicted)."""

    __slots__ = ("timed_out", "timeout")

    def __init__(self) -> None:
        self.timeout: asyncio.Timeout | None = None
        self.timed_out = False

    def evict(self) -> None:
        self.timed_out = True
        if self.timeout is not None:
            self.timeout.reschedule(asyncio.get_running_loop().time())


class BodyDeadline:
    """Answers 408 to a request whose body does not arrive within the deadline, and bounds how many
    connections requests still sending a body may hold (MAX_CONNECTIONS - CONNECTION_HEADROOM)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.seconds = settings.body_read_timeout_s
        self.max_readers = settings.max_connections - settings.connection_headroom
        self.readers: dict[_Reader, None] = {}  # insertion order: the first has been reading longest

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        reader = _Reader()
        # The server's receive and send, dropped as soon as the request is over: the server keeps reading a
        # request's body (and so keeps its connection) for as long as anything references them, and an app
        # that fails on the missing body can keep its frames (and these closures) alive until a GC pass.
        io: list[Any] = [receive, send]
        state = {"started": False, "answered": False, "body_done": False}

        async def guarded_receive() -> dict[str, Any]:
            if state["answered"] or io[0] is None:
                return {"type": "http.disconnect"}
            if state["body_done"]:
                return await io[0]()
            if reader not in self.readers and not reader.timed_out:
                self._enter(reader)
            try:
                async with asyncio.timeout_at(deadline) as reader.timeout:
                    if reader.timed_out:
                        reader.timeout.reschedule(loop.time())
                    message = await io[0]()
            except TimeoutError:
                self.readers.pop(reader, None)
                if not state["started"]:
                    state["answered"] = True
                    await self._answer(scope, io[1])
                    io[0] = io[1] = None
                return {"type": "http.disconnect"}
            finally:
                reader.timeout = None
            if message["type"] != "http.request" or not message.get("more_body", False):
                state["body_done"] = True
                self.readers.pop(reader, None)
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if state["answered"] or io[1] is None:
                return  # the client got its 408; what the app says after it goes nowhere
            if message["type"] == "http.response.start":
                state["started"] = True
                if not state["body_done"]:
                    # Answered before the body was read (a refusal): without this, the server keeps the
                    # connection to read the rest of the body, however slowly it comes, past any deadline.
                    message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
            await io[1](message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if not state["answered"]:
                raise  # after a 408 the app's complaint about the missing body is expected, not an error
        finally:
            self.readers.pop(reader, None)
            io[0] = io[1] = None

    def _enter(self, reader: _Reader) -> None:
        self.readers[reader] = None
        while len(self.readers) > self.max_readers:
            oldest = next(iter(self.readers))
            self.readers.pop(oldest)
            oldest.evict()

    async def _answer(self, scope: dict[str, Any], send: Any) -> None:
        body, headers = timeout_body(scope["path"], scope["headers"])
        try:
            await send({"type": "http.response.start", "status": REQUEST_TIMEOUT, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        except Exception as error:  # the client may be gone already
            log.debug("408 not delivered: %s", error)


# Descriptors a worker needs besides its client connections: database pools, listeners, files, logs.
_OTHER_DESCRIPTORS = 512


def raise_file_limit(settings: Settings) -> None:
    """Let this worker process hold MAX_CONNECTIONS sockets: raise its soft descriptor limit (often 1024) as far
    as the hard limit allows, and say so when even that is too low (accepting then fails past it)."""
    import resource

    needed = settings.max_connections + _OTHER_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning("the descriptor limit (%d) is below TUSKBASE_MAX_CONNECTIONS + %d: raise `ulimit -n` or lower "
                    "MAX_CONNECTIONS", soft, _OTHER_DESCRIPTORS)
