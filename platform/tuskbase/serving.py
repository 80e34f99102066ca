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

from tuskbase.auth import errors as auth_errors
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
        version = next((v.decode("latin-1") for k, v in headers if k == auth_errors.API_VERSION_HEADER.encode()), "")
        new_format = auth_errors.wants_new_format(version)
        body = auth_errors.error_body(REQUEST_TIMEOUT, "request_timeout", MESSAGE, new_format)
    elif path.startswith("/sync/"):
        body = {"code": SYNC_CODE, "message": MESSAGE}
    else:
        body = {"code": GENERIC_CODE, "message": MESSAGE}
    extra = [(b"x-sb-error-code", b"request_timeout")] if path.startswith("/auth/") else []
    return json.dumps(body).encode(), [(b"content-type", b"application/json"), (b"connection", b"close"), *extra]


class _Request:
    """One request with a body, as BodyDeadline guards it: its `receive` and `send` wrap the server's.

    The request is registered with its guard from its first `receive` until its body is in (or it is
    answered); the guard's one timer ends it at its deadline, or earlier when evicted, by cancelling the task
    that awaits the server's `receive` (as `asyncio.timeout` would, without a timer per request).
    """

    __slots__ = ("answered", "body_done", "deadline", "guard", "io", "scope", "started", "task", "timed_out",
                 "waiting")

    def __init__(self, guard: BodyDeadline, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.guard = guard
        self.scope = scope
        # The server's receive and send, dropped as soon as the request is over: the server keeps reading a
        # request's body (and so keeps its connection) for as long as anything references them, and an app
        # that fails on the missing body can keep its frames (and this object) alive until a GC pass.
        self.io: list[Any] = [receive, send]
        self.deadline = 0.0
        self.task: asyncio.Task[Any] | None = None
        self.started = self.answered = self.body_done = self.timed_out = self.waiting = False

    def expire(self) -> None:
        """The deadline is now: a pending `receive` ends, and the next one answers 408."""
        self.timed_out = True
        if self.waiting and self.task is not None:
            self.task.cancel()

    async def receive(self) -> dict[str, Any]:
        receive = self.io[0]
        if self.answered or receive is None:
            return {"type": "http.disconnect"}
        if self.body_done:
            return await receive()
        if not self.timed_out:
            if self.task is None:
                self.task = asyncio.current_task()
                self.guard.enter(self)
            self.waiting = True
            try:
                message = await receive()
            except asyncio.CancelledError:
                # Ours if the deadline passed and no one else asked to cancel as well (the server or the app
                # stopping this request): then the request goes on, to its 408.
                if not self.timed_out or self.task is None or self.task.uncancel() > 0:
                    raise
            else:
                if message["type"] != "http.request" or not message.get("more_body", False):
                    self.body_done = True
                    self.guard.leave(self)
                return message
            finally:
                self.waiting = False
        self.guard.leave(self)
        if not self.started:
            self.answered = True
            await self.guard.answer(self.scope, self.io[1])
            self.io[0] = self.io[1] = None
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        send = self.io[1]
        if self.answered or send is None:
            return  # the client got its 408; what the app says after it goes nowhere
        if message["type"] == "http.response.start":
            self.started = True
            if not self.body_done:
                # Answered before the body was read (a refusal): without this, the server keeps the
                # connection to read the rest of the body, however slowly it comes, past any deadline.
                message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
        await send(message)


class BodyDeadline:
    """Answers 408 to a request whose body does not arrive within the deadline, and bounds how many
    connections requests still sending a body may hold (MAX_CONNECTIONS - CONNECTION_HEADROOM)."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.seconds = settings.body_read_timeout_s
        self.max_readers = settings.max_connections - settings.connection_headroom
        # Requests whose body is still coming, in the order they started: with one timeout for all, that is
        # also the order of their deadlines, so one timer (for the first) serves them all.
        self.readers: dict[_Request, None] = {}
        self._timer: asyncio.TimerHandle | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        request = _Request(self, scope, receive, send)
        try:
            await self.app(scope, request.receive, request.send)
        except Exception:
            if not request.answered:
                raise  # after a 408 the app's complaint about the missing body is expected, not an error
        finally:
            self.leave(request)
            request.io[0] = request.io[1] = None

    def enter(self, request: _Request) -> None:
        loop = asyncio.get_running_loop()
        request.deadline = loop.time() + self.seconds
        self.readers[request] = None
        while len(self.readers) > self.max_readers:
            oldest = next(iter(self.readers))
            del self.readers[oldest]
            oldest.expire()
        if self._timer is None:
            self._timer = loop.call_at(request.deadline, self._sweep)

    def leave(self, request: _Request) -> None:
        self.readers.pop(request, None)

    def _sweep(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        while self.readers:
            first = next(iter(self.readers))
            if first.deadline > now:
                self._timer = asyncio.get_running_loop().call_at(first.deadline, self._sweep)
                return
            del self.readers[first]
            first.expire()

    async def answer(self, scope: dict[str, Any], send: Any) -> None:
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
