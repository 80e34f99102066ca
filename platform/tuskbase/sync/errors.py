"""Errors of the sync service: stable, greppable codes, one JSON shape, translated to HTTP in routes.py.

Wire format: `{"code": "SYNC101", "message": "...", "details": ...}` with the HTTP status below.
"""

from __future__ import annotations

from typing import Any

BAD_REQUEST = ("SYNC100", 400)  # malformed body or parameter
BAD_CURSOR = ("SYNC101", 400)  # a cursor that is not one of ours, or of another client
UNKNOWN_TABLE = ("SYNC102", 400)  # not a served table
BAD_CLIENT = ("SYNC103", 400)  # client_id missing or malformed
CLIENT_OWNED = ("SYNC104", 403)  # the client id belongs to another user
UNAUTHORIZED = ("SYNC105", 401)  # no valid apikey / token
FORBIDDEN_TABLE = ("SYNC106", 403)  # the caller's role may not read this table at all
CURSOR_AHEAD = ("SYNC107", 400)  # a cursor past the change feed (not one this server's feed issued)
TOO_DEEP = ("SYNC108", 400)  # a JSON body nested deeper than TUSKBASE_SYNC_JSON_MAX_DEPTH
REFUSED = ("SYNC110", 409)  # a push refused (per-row reasons in details)
TOO_LARGE = ("SYNC111", 413)  # a push with too many rows

# The WatermelonDB endpoint (watermelon.py)
BAD_TIMESTAMP = ("SYNC120", 400)  # last_pulled_at not a number this server issued to this user
BAD_PARAMETER = ("SYNC121", 400)  # schema_version, migration or limit malformed
NOT_WATERMELON_TABLE = ("SYNC122", 400)  # not a table WatermelonDB can sync (not served, or no one-column key)
UNKNOWN_COLUMN = ("SYNC123", 400)  # a pushed field is not a column
BAD_RECORD = ("SYNC124", 400)  # a pushed record is not an object with a string id, or a value is malformed
CONFLICT = ("SYNC125", 409)  # changed or deleted on the server since lastPulledAt: pull, then push again
FORBIDDEN_WRITE = ("SYNC126", 403)  # row-level security refused one of the writes
REFUSED_RECORD = ("SYNC127", 400)  # the engine refused a record for another reason (details say which)

# The live channel (routes_live.py)
LIVE_LIMIT = ("SYNC130", 429)  # live connection limit reached
LIVE_NOT_READY = ("SYNC131", 503)  # the live channel is not listening yet

# Any endpoint (routes.py)
UNAVAILABLE = ("SYNC140", 503)  # the database is starting, stopping or unreachable: retry after Retry-After
# Answered by serving.BodyDeadline (the core cannot import a service; a test keeps the two equal)
BODY_TIMEOUT = ("SYNC141", 408)  # the request body did not arrive within TUSKBASE_BODY_READ_TIMEOUT_S

# Load limits (limits.py): each answer carries Retry-After (TUSKBASE_SYNC_RETRY_AFTER)
USER_BUSY = ("SYNC150", 429)  # this user already runs TUSKBASE_SYNC_PER_USER_MAX sync requests in this process
BUSY = ("SYNC151", 503)  # no sync slot of this process came free within TUSKBASE_SYNC_QUEUE_MS
TIMED_OUT = ("SYNC152", 503)  # a sync statement ran past TUSKBASE_SYNC_STATEMENT_TIMEOUT_MS


class SyncError(Exception):
    def __init__(self, kind: tuple[str, int], message: str, details: Any = None, *,
                 retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds, sent as Retry-After
        self.code, self.status = kind
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body
