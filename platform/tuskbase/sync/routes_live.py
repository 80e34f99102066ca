"""The live channel, `/sync/v1/live`: a WebSocket (or, for a GET, Server-Sent Events: see `live_events`) that
pokes a client with an opaque feed position when it should pull.

Authentication: the user's access token in `Authorization: Bearer` or, for clients that cannot set headers on a
WebSocket (browsers), the `access_token` query parameter; the project key in `apikey` (header or parameter).
Catching up: the position the client last saw, as `seq` (the last poke's), `cursor` + `client_id` (its last
/sync/v1/pull cursor) or `last_pulled_at` (its WatermelonDB timestamp); what it missed since is checked at once
and answered with a poke if it may see any of it. None of them: the client starts from the current position.

Server -> client (JSON text frames): `{"type": "ready", "seq": P}` once, then `{"type": "poke", "seq": P}`
whenever data the user may see changed (several changes may make one poke; a user is poked only for changes it
may see or held, see live.py), where P is an opaque position (a string: the feed's seq sealed, so that a poke does
not tell how many changes the whole database saw) to give back as `seq` when reconnecting, `{"type": "pong"}`, and
`{"type": "error", "code": ..., "message": ...}` before the server closes (codes below).
Client -> server: `{"type": "ping"}`, `{"type": "token", "token": "<new access token>"}` (same user; extends the
connection past the old token's expiry).

Close codes: 4001 invalid or expired token, 4003 new token of another user, 4029 connection limit reached
(`sync_live_max_connections`, `sync_live_max_per_user`), 4400 bad parameter, 1001 server shutting down, 1013 the
channel is not listening yet (retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import asyncpg
from litestar import Litestar, Request, Response, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.response import Stream

from tuskbase import db
from tuskbase.caller import CallerError, from_token, identify
from tuskbase.sync.errors import BAD_REQUEST, LIVE_LIMIT, LIVE_NOT_READY, UNAUTHORIZED, SyncError
from tuskbase.sync.live import LimitReached, LiveHub, NotReady, Subscriber, start_position

SSE_KEEPALIVE_SECONDS = 15.0

CLOSE_TOKEN = 4001
CLOSE_OTHER_USER = 4003
CLOSE_LIMIT = 4029
CLOSE_BAD_REQUEST = 4400
CLOSE_GOING_AWAY = 1001
CLOSE_TRY_AGAIN = 1013


async def start_live(app: Litestar) -> None:
    settings = app.state.settings

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(db.authenticator_url(settings),
                                     server_settings={"application_name": "tuskbase-live"})

    hub = LiveHub(settings, app.state.pool, connect)
    app.state.live = hub
    await hub.start()


async def stop_live(app: Litestar) -> None:
    hub = app.state.get("live")
    if hub is not None:
        await hub.close()


async def _refuse(socket: WebSocket, code: int, error: str, message: str) -> None:
    with contextlib.suppress(Exception):
        await socket.send_text(json.dumps({"type": "error", "code": error, "message": message}))
        await socket.close(code=code, reason=error)


@websocket("/live")
async def live_socket(socket: WebSocket) -> None:
    state = socket.app.state
    hub: LiveHub = state.live
    await socket.accept()
    try:
        caller = identify(state.claims, *_identity_of(socket))
    except CallerError as error:
        await _refuse(socket, CLOSE_TOKEN, "invalid_token", str(error))
        return
    try:
        seq = await start_position(state.pool, hub.positions, caller, socket.query_params)
    except ValueError as error:
        await _refuse(socket, CLOSE_BAD_REQUEST, "bad_request", str(error))
        return
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        await _refuse(socket, CLOSE_TRY_AGAIN, "not_ready", f"the database is unavailable: {error}")
        return
    try:
        subscriber = hub.subscribe(caller, seq)
    except LimitReached as error:
        await _refuse(socket, CLOSE_LIMIT, "too_many_connections", str(error))
        return
    except NotReady as error:
        await _refuse(socket, CLOSE_TRY_AGAIN, "not_ready", str(error))
        return
    lock = asyncio.Lock()

    async def send(message: dict[str, Any]) -> None:
        async with lock:
            await socket.send_text(json.dumps(message))

    try:
        await send({"type": "ready", "seq": hub.positions.seal(subscriber.poked)})
        reader = asyncio.create_task(_read(socket, hub, subscriber, send))
        writer = asyncio.create_task(_write(socket, hub, subscriber, send))
        _done, pending = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
    except (WebSocketDisconnect, OSError):
        pass
    finally:
        hub.unsubscribe(subscriber)


async def _write(socket: WebSocket, hub: LiveHub, subscriber: Subscriber, send: Any) -> None:
    """Send pokes as the hub raises them; close when the token expires or the server stops."""
    while True:
        remaining = subscriber.expires_at - time.time()
        if remaining <= 0:
            await _refuse(socket, CLOSE_TOKEN, "token_expired", "the access token expired; reconnect with a new one")
            return
        try:
            await asyncio.wait_for(subscriber.wake.wait(), timeout=min(remaining, 3600))
        except TimeoutError:
            continue
        subscriber.wake.clear()
        if hub.closing:
            await _refuse(socket, CLOSE_GOING_AWAY, "shutting_down", "the server is stopping; reconnect")
            return
        await send({"type": "poke", "seq": hub.positions.seal(subscriber.poked)})


async def _read(socket: WebSocket, hub: LiveHub, subscriber: Subscriber, send: Any) -> None:
    """Answer pings and token refreshes; return when the client goes away."""
    state = socket.app.state
    while True:
        try:
            text = await socket.receive_text()
        except WebSocketDisconnect:
            return
        try:
            message = json.loads(text)
            kind = message.get("type") if isinstance(message, dict) else None
        except ValueError:
            kind = None
        if kind == "ping":
            await send({"type": "pong"})
        elif kind == "token" and isinstance(message.get("token"), str):
            try:
                hub.refresh(subscriber, from_token(state.claims, message["token"]))
            except CallerError as error:
                await _refuse(socket, CLOSE_TOKEN, "invalid_token", str(error))
                return
            except PermissionError as error:
                await _refuse(socket, CLOSE_OTHER_USER, "other_user", str(error))
                return
            await send({"type": "token_ok", "expires_at": int(subscriber.expires_at)})
        else:
            await send({"type": "error", "code": "bad_message",
                        "message": 'expected {"type": "ping"} or {"type": "token", "token": ...}'})


def _identity_of(connection: WebSocket | Request) -> tuple[str | None, str | None]:
    params = connection.query_params
    authorization = connection.headers.get("authorization")
    if not authorization and params.get("access_token"):
        authorization = f"Bearer {params.get('access_token')}"
    return connection.headers.get("apikey") or params.get("apikey"), authorization


@get("/live", include_in_schema=False)
async def live_events(request: Request) -> Response[bytes] | Stream:
    """The same channel as Server-Sent Events, for clients without WebSockets (`EventSource`): events `ready`,
    `poke` (each with `id: <position>`, so a browser reconnecting sends `Last-Event-ID` and catches up) and `error`;
    a comment every 15 s keeps proxies from closing an idle stream. Refusals are JSON errors (401, 400, 429,
    503) before the stream starts, answered by the sync router."""
    state = request.app.state
    hub: LiveHub = state.live
    try:
        caller = identify(state.claims, *_identity_of(request))
    except CallerError as error:
        raise SyncError(UNAUTHORIZED, str(error)) from None
    params = dict(request.query_params)
    last_event = request.headers.get("last-event-id")
    if last_event and not any(params.get(k) for k in ("seq", "cursor", "last_pulled_at")):
        params["seq"] = last_event
    try:
        seq = await start_position(state.pool, hub.positions, caller, params)
    except ValueError as error:
        raise SyncError(BAD_REQUEST, str(error)) from None
    try:
        subscriber = hub.subscribe(caller, seq)
    except LimitReached as error:
        raise SyncError(LIVE_LIMIT, str(error)) from None
    except NotReady as error:
        raise SyncError(LIVE_NOT_READY, str(error)) from None
    return Stream(_events(hub, subscriber), media_type="text/event-stream",
                  headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


def _event(kind: str, body: dict[str, Any], position: str | None = None) -> bytes:
    head = f"id: {position}\n" if position is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(body)}\n\n".encode()


async def _events(hub: LiveHub, subscriber: Subscriber) -> Any:
    try:
        ready = hub.positions.seal(subscriber.poked)
        yield _event("ready", {"type": "ready", "seq": ready}, ready)
        while True:
            remaining = subscriber.expires_at - time.time()
            if remaining <= 0:
                yield _event("error", {"type": "error", "code": "token_expired",
                                       "message": "the access token expired; reconnect with a new one"})
                return
            try:
                await asyncio.wait_for(subscriber.wake.wait(), timeout=min(remaining, SSE_KEEPALIVE_SECONDS))
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            subscriber.wake.clear()
            if hub.closing:
                yield _event("error", {"type": "error", "code": "shutting_down",
                                       "message": "the server is stopping; reconnect"})
                return
            position = hub.positions.seal(subscriber.poked)
            yield _event("poke", {"type": "poke", "seq": position}, position)
    finally:
        hub.unsubscribe(subscriber)


ROUTES = [live_socket, live_events]
