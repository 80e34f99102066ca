"""Database access of the API: the asyncpg pool, its URLs, and what "the database is unavailable" means.

Who a statement runs as is not decided here: `tuskbase.caller` sets the caller's identity (the request
transaction, REST's session form, sync's service-role step, the auth role).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from tuskbase.config import Settings
from tuskbase.tokens import authenticator_password

DATABASE_NAME = "tuskbase"
SYNC_APPLICATION = "tuskbase-sync"  # pg_stat_activity.application_name of sync's connections
# The server is starting, shutting down or was shut down under us (57P01-57P03), or has no connection slot
# left (53300): gone for now, not refusing the request itself. Connection errors (08xxx) are the same, seen
# from the client's side of the socket.
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# OSErrors of a path, not a socket: nothing to do with the database.
_FILE_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


def admin_url(settings: Settings) -> str:
    """URL of a superuser-capable role: migrations, the feed consumer and workers use it."""
    if settings.database_url:
        return settings.database_url
    return f"postgresql://postgres@127.0.0.1:{settings.db_port}/{DATABASE_NAME}"


def authenticator_url(settings: Settings) -> str:
    """The same database as `admin_url`, as the NOINHERIT login role `authenticator` the API pool uses."""
    parts = urlsplit(admin_url(settings))
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    password = "" if settings.embedded else ":" + quote(authenticator_password(settings), safe="")
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"authenticator{password}@{host}{port}", parts.path, parts.query, ""))


async def create_pool(settings: Settings, url: str | None = None) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        url or authenticator_url(settings),
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        # Statements are prepared per connection and cached: the REST hot path relies on it.
        statement_cache_size=1024,
        server_settings={"application_name": "tuskbase-api"},
        reset=keep_session,
    )


async def create_sync_pool(settings: Settings, url: str | None = None) -> asyncpg.Pool:
    """The sync service's own pool (`app.state.sync_pool`): a pull over a large table cannot take the connections
    auth, REST and /ready use, and every statement on it runs under `statement_timeout` (a session default set
    at connect, which a role switch and `RESET ALL` keep)."""
    return await asyncpg.create_pool(
        url or authenticator_url(settings),
        min_size=min(settings.db_pool_min, settings.sync_pool_max),
        max_size=settings.sync_pool_max,
        statement_cache_size=1024,
        server_settings=sync_server_settings(settings),
        reset=keep_session,  # sync sets its identity transaction-locally, as the API pool's users do
    )


def sync_server_settings(settings: Settings) -> dict[str, str]:
    return {"application_name": SYNC_APPLICATION, "statement_timeout": str(settings.sync_statement_timeout_ms)}


async def keep_session(_conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query (RESET ALL, UNLISTEN *, ...) when a connection goes back to the pool.

    Identity is only ever set transaction-locally, so it is gone at COMMIT; asyncpg still rolls back a
    transaction left open and drops listeners before calling this. Saves one round trip per request.
    """


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` means the database cannot serve right now (starting, stopping, unreachable, the
    connection broke), so every surface answers 503 with Retry-After instead of a 500."""
    if isinstance(error, asyncpg.PostgresError):
        state = getattr(error, "sqlstate", None) or ""
        return state in _UNAVAILABLE_STATES or state.startswith("08")
    if isinstance(error, _FILE_ERRORS):  # a path, not a socket: nothing to do with the database
        return False
    return isinstance(error, (asyncpg.InterfaceError, OSError, TimeoutError))
