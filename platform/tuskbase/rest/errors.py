"""Every error the REST API answers, in PostgREST's shape `{code, message, details, hint}`.

The `PGRST` codes are PostgREST's own (https://postgrest.org/en/stable/references/errors.html), so client code
that matches on them keeps working. Database errors keep their SQLSTATE as `code` and get PostgREST's
SQLSTATE -> HTTP status mapping (`status_of_sqlstate`).
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from tuskbase.db import is_unavailable

DB_CONNECTION = "PGRST001"  # 503: the database cannot be reached
# Grammar and request errors (status 400 unless noted).
PARSE_ERROR = "PGRST100"  # query string does not follow the grammar
INVALID_RPC_METHOD = "PGRST101"  # only GET / HEAD / POST on /rpc
INVALID_BODY = "PGRST102"  # body is not JSON (or too large: 413)
INVALID_RANGE = "PGRST103"  # 416
INVALID_SCHEMA = "PGRST106"  # Accept-Profile / Content-Profile not exposed: 406
INVALID_CONTENT_TYPE = "PGRST107"  # 415
NOT_EMBEDDED = "PGRST108"  # filter or order on a resource that is not embedded
SINGULAR = "PGRST116"  # application/vnd.pgrst.object+json with 0 or > 1 rows: 406
UNSUPPORTED_METHOD = "PGRST117"  # 405
EMBED_FILTER = "PGRST120"  # a filter on an embedded resource other than is.null / not.is.null
# Schema cache errors.
NO_RELATIONSHIP = "PGRST200"  # 400
AMBIGUOUS_RELATIONSHIP = "PGRST201"  # 300
NO_FUNCTION = "PGRST202"  # 404
AMBIGUOUS_FUNCTION = "PGRST203"  # 300
NO_COLUMN = "PGRST204"  # 400
NO_TABLE = "PGRST205"  # 404
# Tokens.
JWT_INVALID = "PGRST301"  # 401
JWT_MISSING = "PGRST302"  # 401
JWT_CLAIMS = "PGRST303"  # 401: signed, but expired or a claim of the wrong type or form
# Tuskbase's own (beyond PostgREST): batches and persisted queries.
NO_PERSISTED_QUERY = "TUSK404"
BATCH_INVALID = "TUSK400"
QUERY_TOO_LARGE = "TUSK410"  # 400: a query string or statement over a size limit, refused before any SQL runs
# Postgres' wire protocol counts a statement's parameters in 16 bits (asyncpg refuses more, as an InterfaceError).
MAX_BOUND_VALUES = 32767


class ApiError(Exception):
    """An error answer; raised anywhere in the pipeline and rendered once by `respond`."""

    def __init__(self, status: int, code: str, message: str, details: str | None = None,
                 hint: str | None = None, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = headers or []

    def body(self) -> bytes:
        return json.dumps({"code": self.code, "details": self.details, "hint": self.hint,
                           "message": self.message}).encode()


def parse_error(message: str, details: str | None = None) -> ApiError:
    return ApiError(400, PARSE_ERROR, message, details)


def query_too_large(message: str, hint: str) -> ApiError:
    return ApiError(400, QUERY_TOO_LARGE, message, None, hint)


def no_table(schema: str, name: str) -> ApiError:
    return ApiError(404, NO_TABLE, f"Could not find the table '{schema}.{name}' in the schema cache")


def no_column(table: str, column: str) -> ApiError:
    # PostgREST passes the database's own error through for unknown columns in select/filters.
    return ApiError(400, "42703", f"column {table}.{column} does not exist")


def no_payload_column(table: str, column: str) -> ApiError:
    return ApiError(400, NO_COLUMN, f"Could not find the '{column}' column of '{table}' in the schema cache")


def unavailable(error: BaseException) -> ApiError:
    """The database cannot be reached or the connection broke (PostgREST's PGRST001, 503)."""
    return ApiError(503, DB_CONNECTION, "Database client error. Retrying the connection.",
                    f"{type(error).__name__}: {error}"[:300])


def status_of_sqlstate(code: str, authenticated: bool) -> int:
    """PostgREST's table: https://postgrest.org/en/stable/references/errors.html#http-status-codes"""
    if code == "42501":  # insufficient privilege: a missing token is 401, a token without the right is 403
        return 403 if authenticated else 401
    exact = _EXACT.get(code)
    if exact is not None:
        return exact
    return _BY_CLASS.get(code[:2], 400)


_EXACT = {
    "23503": 409, "23505": 409, "25006": 405, "P0001": 400, "42883": 404, "42P01": 404, "42P17": 500,
    "21000": 400, "22023": 400, "40001": 409, "40P01": 409,
}
_BY_CLASS = {
    "08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500, "38": 500, "39": 500,
    "3B": 500, "40": 500, "53": 503, "54": 400, "55": 500, "57": 500, "58": 500, "F0": 500, "HV": 500,
    "P0": 500, "XX": 500,
}
# Unlike PostgREST (500), class 54 (program limit exceeded: 54011 a select of more than 1664 columns, 54001 a
# statement too complex, 54000 an index row too large) is 400: the request's size is the cause, and retrying
# it unchanged fails the same way.


def from_database(error: Any, authenticated: bool) -> ApiError:
    """An asyncpg `PostgresError` as PostgREST would answer it."""
    code = getattr(error, "sqlstate", None) or "XX000"
    message = getattr(error, "message", None) or str(error)
    status = status_of_sqlstate(code, authenticated)
    return ApiError(status, code, message, getattr(error, "detail", None), getattr(error, "hint", None))


class DatabaseErrors:
    """`with DatabaseErrors(authenticated):` around a database call answers what it raises in PostgREST's shape:
    a database error with its SQLSTATE, a value asyncpg cannot encode as 400 PGRST100, a lost connection as 503."""

    __slots__ = ("authenticated",)

    def __init__(self, authenticated: bool) -> None:
        self.authenticated = authenticated

    def __enter__(self) -> None:
        return None

    def __exit__(self, _kind: Any, error: BaseException | None, _trace: Any) -> bool:
        if error is None or isinstance(error, ApiError):
            return False
        if is_unavailable(error):  # starting, stopping, unreachable: 503 (the handler adds Retry-After)
            raise unavailable(error) from None
        if isinstance(error, asyncpg.PostgresError):
            raise from_database(error, self.authenticated) from None
        if isinstance(error, (asyncpg.DataError, ValueError, TypeError)):
            raise ApiError(400, PARSE_ERROR, f"Invalid value: {error}") from None
        return False
