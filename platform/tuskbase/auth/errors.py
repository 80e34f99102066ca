"""Client-facing errors of the auth service, in the wire format the Supabase Auth clients parse.

Error codes are the ones Supabase Auth uses (`invalid_credentials`, `weak_password`, ...), so that client
code branching on `error.code` keeps working. The body shape depends on `X-Supabase-Api-Version`: from
2024-01-01 on it is `{code, message}`; older clients get `{code: <status>, error_code, msg}`. Both carry
the `x-sb-error-code` header.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response

API_VERSION = "2024-01-01"
API_VERSION_HEADER = "x-supabase-api-version"

# Browsers (supabase-js on the web) call /auth/v1 cross-origin with these headers; tokens travel in headers,
# never cookies, so any origin may call.
CORS_HEADERS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
    "access-control-allow-headers": "authorization, apikey, content-type, x-client-info, x-supabase-api-version, "
                                    "x-device-id, x-device-platform, x-app-version",
    "access-control-expose-headers": "x-sb-error-code, x-supabase-api-version, retry-after, x-total-count, link",
    "access-control-max-age": "86400",
}

# Every code the service answers with, in one place.
ANONYMOUS_PROVIDER_DISABLED = "anonymous_provider_disabled"
BAD_CODE_VERIFIER = "bad_code_verifier"
BAD_JSON = "bad_json"
BAD_JWT = "bad_jwt"
BAD_OAUTH_CALLBACK = "bad_oauth_callback"
BAD_OAUTH_STATE = "bad_oauth_state"
EMAIL_ADDRESS_INVALID = "email_address_invalid"
EMAIL_EXISTS = "email_exists"
EMAIL_NOT_CONFIRMED = "email_not_confirmed"
EMAIL_PROVIDER_DISABLED = "email_provider_disabled"
FLOW_STATE_EXPIRED = "flow_state_expired"
FLOW_STATE_NOT_FOUND = "flow_state_not_found"
INVALID_CREDENTIALS = "invalid_credentials"
NO_AUTHORIZATION = "no_authorization"
NOT_ADMIN = "not_admin"
OTP_EXPIRED = "otp_expired"
OVER_REQUEST_RATE_LIMIT = "over_request_rate_limit"
PHONE_PROVIDER_DISABLED = "phone_provider_disabled"
PROVIDER_DISABLED = "provider_disabled"
REFRESH_TOKEN_ALREADY_USED = "refresh_token_already_used"
REFRESH_TOKEN_NOT_FOUND = "refresh_token_not_found"
SAME_PASSWORD = "same_password"
SESSION_EXPIRED = "session_expired"
SESSION_NOT_FOUND = "session_not_found"
SERVICE_UNAVAILABLE = "service_unavailable"  # Tuskbase's own: 503 with Retry-After while the database is down
SIGNUP_DISABLED = "signup_disabled"
UNEXPECTED_FAILURE = "unexpected_failure"
USER_ALREADY_EXISTS = "user_already_exists"
USER_BANNED = "user_banned"
USER_NOT_FOUND = "user_not_found"
VALIDATION_FAILED = "validation_failed"
WEAK_PASSWORD = "weak_password"


class AuthError(Exception):
    """An answer to the client: HTTP status, stable error code, human message."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


def bad_request(message: str, code: str = VALIDATION_FAILED) -> AuthError:
    return AuthError(400, code, message)


def weak_password(reasons: list[str], message: str) -> AuthError:
    return AuthError(422, WEAK_PASSWORD, message, extra={"weak_password": {"reasons": reasons}})


def wants_new_format(version: str) -> bool:
    """Whether the client's `x-supabase-api-version` asks for GoTrue's newer error body."""
    return len(version) == 10 and version >= API_VERSION


def error_body(status: int, code: str, message: str, new_format: bool) -> dict[str, Any]:
    """GoTrue's error body, in the newer or the older shape."""
    if new_format:
        return {"code": code, "message": message}
    return {"code": status, "error_code": code, "msg": message}


def to_response(request: Request, error: AuthError) -> Response[bytes]:
    body = error_body(error.status, error.code, error.message,
                      wants_new_format(request.headers.get(API_VERSION_HEADER, "")))
    body.update(error.extra)
    headers = {"x-sb-error-code": error.code, API_VERSION_HEADER: API_VERSION, **CORS_HEADERS, **error.headers}
    return Response(msgspec.json.encode(body), status_code=error.status, media_type="application/json",
                    headers=headers)
