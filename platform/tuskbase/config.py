"""Settings: one typed object read once from `TUSKBASE_*` environment variables.

Every field is documented where it is declared. A bad value raises `SettingsError`, whose message is one
line naming the variable, so `tuskbase` can stop with it instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PREFIX = "TUSKBASE_"


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable."""


def _doc(text: str, **kwargs: typing.Any) -> typing.Any:
    return field(metadata={"doc": text}, **kwargs)


@dataclass(frozen=True, slots=True)
class Settings:
    # --- processes -------------------------------------------------------------------------------------
    host: str = _doc("Address the API listens on.", default="127.0.0.1")
    port: int = _doc("Port the API listens on.", default=54321)
    public_url: str = _doc("URL clients reach the API at (links in mails, signed URLs).", default="")
    workers: int = _doc("API server worker processes.", default=1)
    log_format: str = _doc("`text` or `json` (one JSON object per line).", default="text")
    log_level: str = _doc("Python log level name.", default="INFO")

    # --- database ------------------------------------------------------------------------------------
    database_url: str = _doc(
        "Postgres URL of a superuser-capable role; empty means the embedded Postgres under data_dir.",
        default="",
    )
    db_port: int = _doc("Port of the embedded Postgres (127.0.0.1).", default=54322)
    data_dir: Path = _doc("Folder for the embedded Postgres, keys and local storage.", default=Path(".tuskbase"))
    db_pool_min: int = _doc("Minimum connections in the API's asyncpg pool.", default=2)
    db_pool_max: int = _doc("Maximum connections in the API's asyncpg pool.", default=16)
    authenticator_password: str = _doc(
        "Password of the `authenticator` login role the API pool uses; empty: generated into data_dir.",
        default="",
    )
    app_dir: Path | None = _doc(
        "Folder of the app served (holding migrations/ and policies/); empty: none.", default=None
    )

    # --- tokens ------------------------------------------------------------------------------------
    jwt_secret: str = _doc("HS256 signing secret (>= 32 chars); empty: generated once into data_dir.", default="")
    jwt_issuer: str = _doc("`iss` claim of the tokens the API signs.", default="tuskbase")
    jwt_exp: int = _doc("Lifetime of access tokens in seconds.", default=3600)

    # --- auth ------------------------------------------------------------------------------------------
    jwt_algorithm: str = _doc(
        "Algorithm of the tokens the API signs: `HS256` (shared secret) or `ES256` (key pair, public key at "
        "/auth/v1/.well-known/jwks.json). HS256 tokens stay accepted under ES256 (legacy keys).",
        default="HS256",
    )
    jwt_private_key: str = _doc(
        "ES256 private key: PEM text or the path of a PEM file; empty: generated once into data_dir.", default=""
    )
    jwt_previous_public_keys: str = _doc(
        "Earlier ES256 public keys still accepted and published after a key rotation: PEM text or a file of "
        "one or more PEM public keys. Drop them once the tokens they signed have expired (JWT_EXP).",
        default="",
    )
    auth_site_url: str = _doc(
        "Where mail links and OAuth sign-ins land by default; empty: the API's page /auth/v1/landing, which says "
        "what happened.", default="")
    auth_redirect_urls: str = _doc(
        "Comma-separated allow list of `redirect_to` URLs (`*` matches within a path segment, `**` across).",
        default="",
    )
    auth_signup_enabled: bool = _doc("Allow new users to sign up (admins can always create users).", default=True)
    auth_anonymous_enabled: bool = _doc("Allow anonymous sign-in (`POST /auth/v1/signup` with no email).",
                                        default=False)
    auth_email_autoconfirm: bool = _doc(
        "Confirm emails at sign-up without a mail (else a confirmation mail is sent first). `tuskbase dev` "
        "defaults it to true, as Supabase's local stack does; set it to false there to test confirmations.",
        default=False
    )
    auth_password_min_length: int = _doc("Shortest password accepted.", default=8)
    auth_password_required_characters: str = _doc(
        "Character classes a password must contain, comma-separated among lower, upper, digits, symbols.",
        default="",
    )
    auth_secure_password_change: bool = _doc(
        "Changing the password from a session older than 24 h needs the current password or a mailed code "
        "(GET /auth/v1/reauthenticate).",
        default=False,
    )
    auth_secure_email_change: bool = _doc(
        "An email change needs the code sent to the current address as well as the one sent to the new address.",
        default=False,
    )
    auth_refresh_reuse_interval: int = _doc(
        "Seconds a rotated refresh token may still be used (concurrent refreshes); later reuse revokes the "
        "whole session.",
        default=10,
    )
    auth_session_inactivity_timeout: int = _doc(
        "Seconds without a refresh after which a session ends (0: never; mobile sessions last months).", default=0
    )
    auth_session_timebox: int = _doc(
        "Seconds after sign-in at which a session ends whatever its use (0: never).", default=0
    )
    auth_otp_exp: int = _doc("Lifetime of mailed one-time codes and links, in seconds.", default=3600)
    auth_otp_length: int = _doc("Digits of mailed one-time codes.", default=6)
    auth_rate_limit_window: int = _doc("Window of the credential-endpoint rate limits, in seconds.", default=300)
    auth_rate_limit_per_ip: int = _doc("Credential requests allowed per client IP per window.", default=100)
    auth_rate_limit_per_identifier: int = _doc(
        "Credential requests allowed per email, phone or refresh-token session per window.", default=30
    )
    auth_client_ip_header: str = _doc(
        "Header holding the client IP when behind a proxy (e.g. `x-forwarded-for`: its last entry, the one your "
        "proxy appended); empty: the peer address.",
        default="",
    )
    auth_hook_custom_access_token: str = _doc(
        "SQL function `schema.name(event jsonb) returns jsonb` that may change access-token claims (as Supabase's "
        "custom access token hook); granted to tuskbase_auth. Empty: none.",
        default="",
    )
    auth_oidc_providers: str = _doc(
        'OAuth/OIDC providers as JSON: {"name": {"issuer": ..., "client_id": ..., "client_secret": ..., '
        '"scopes": "openid email profile"}}; any OIDC issuer with discovery. Plain OAuth 2.0 providers (GitHub) '
        'give authorization_endpoint, token_endpoint, userinfo_endpoint (and emails_endpoint) instead of issuer.',
        default="",
    )
    auth_phone_enabled: bool = _doc("Allow sign-up and sign-in with a phone number and SMS codes.", default=False)
    auth_sms_webhook_url: str = _doc(
        "Where SMS go: an https URL receiving POST {phone, message} (your SMS provider's bridge); empty: printed "
        "to the console and kept in auth.sms_outbox.",
        default="",
    )
    auth_captcha_provider: str = _doc(
        "Captcha checked on sign-up, sign-in and mail/SMS sending: empty (none), `hcaptcha` or `turnstile`.",
        default="",
    )
    auth_captcha_secret: str = _doc("Secret key of the captcha provider.", default="")
    auth_captcha_verify_url: str = _doc(
        "Siteverify endpoint; empty: the provider's public one.", default=""
    )
    smtp_url: str = _doc(
        "Mail server, smtp://user:password@host:port (`?starttls=true`) or smtps://; empty: mails are printed "
        "to the console and kept in auth.mail_outbox.",
        default="",
    )
    smtp_sender: str = _doc("From address of the mails auth sends.", default="Tuskbase <noreply@localhost>")
    auth_mail_templates: Path | None = _doc(
        "Folder of mail templates replacing the built-in ones: <kind>.txt or <kind>.html (kinds: confirmation, "
        "magiclink, recovery, email_change, invite, reauthentication), first line `Subject: ...`, Supabase "
        "placeholders {{ .Token }} {{ .ConfirmationURL }} {{ .Email }} {{ .SiteURL }} {{ .TokenHash }} "
        "{{ .RedirectTo }}.",
        default=None,
    )

    # --- rest ------------------------------------------------------------------------------------------
    rest_schemas: str = _doc("Schemas exposed at /rest/v1, comma-separated; the first is the default.",
                             default="public")
    rest_max_rows: int = _doc("Most rows one REST read returns (0: no limit).", default=1000)
    rest_compress_min_bytes: int = _doc("REST bodies at least this large are compressed when asked.",
                                        default=1024)
    rest_batch_max: int = _doc("Most sub-requests in one POST /rest/v1/batch.", default=50)
    rest_plan_cache_size: int = _doc("Parsed REST requests kept per API process.", default=2048)

    # --- bad input and database states (rest-errors) ---------------------------------------------------
    unavailable_retry_after: int = _doc(
        "Seconds a 503 answer tells clients to wait (`Retry-After`) when the database is starting, stopping or "
        "unreachable, on every surface.", default=2)
    rest_max_query_bytes: int = _doc(
        "Longest REST query string (also of a batch sub-request), in bytes, refused with 400 before it is "
        "parsed.", default=65536)
    # A term costs up to ~8 us of parsing on a 2-core dev machine (a select item; an in-list value ~5 us), on
    # the event loop: 2000 bounds one distinct URL to ~16 ms and still lets `.in()` carry ~2000 ids.
    rest_max_query_terms: int = _doc(
        "Most terms in one REST query string, refused with 400 before it is parsed: each parameter and each "
        "comma-separated item inside one (select columns, or/and filters, in-list values) counts.",
        default=2000)

    # --- supabase developer tools (supabase-dx) ------------------------------------------------------------
    rest_aggregates_enabled: bool = _doc(
        "Allow PostgREST's aggregate functions in `select` (`count()`, `amount.sum()`, avg, max, min), as "
        "PostgREST's `db-aggregates-enabled`; off, they answer PGRST123. An aggregate over a large table is "
        "a full scan: keep statement timeouts and row-level security in mind. `todos(count)` works either way.",
        default=False)

    # --- sync ------------------------------------------------------------------------------------------
    sync_slot: str = _doc("Logical replication slot of the feed; empty: `tuskbase_sync_<database>`.", default="")
    sync_feed_batch: int = _doc("Changes the feed reads from the slot per batch (whole transactions).",
                                default=10000)
    sync_feed_poll_ms: int = _doc("How often an idle feed leader checks the WAL for new commits, in ms.", default=5)
    sync_feed_standby_ms: int = _doc("How often a standby feed consumer tries to become leader, in ms.",
                                     default=1000)
    sync_retention_hours: int = _doc(
        "Hours of change log (and idle client state) kept; an older cursor is answered `reset`.", default=168
    )
    sync_pull_limit_default: int = _doc("Records per pull when the client gives no limit.", default=1000)
    sync_pull_limit_max: int = _doc("Most records one pull may return.", default=10000)
    sync_push_max_rows: int = _doc("Most rows one push may carry.", default=5000)

    # --- sync: live channel --------------------------------------------------------------------------------
    sync_live_max_connections: int = _doc("Live channel connections one API process holds at most.",
                                          default=10000)
    sync_live_max_per_user: int = _doc("Live channel connections one user may hold at once (per API process).",
                                       default=20)
    sync_live_check_max: int = _doc(
        "Most RLS checks the live channel runs for one feed batch (changed rows alike for the policies count once, "
        "answers it kept are not asked again; ten probes of the clients' view records count as one); beyond it "
        "every connected user is poked (a mass change; a poke is only a hint to pull).",
        default=20000,
    )
    sync_live_visibility_cache_seconds: int = _doc(
        "Seconds the live channel keeps a user's RLS answer for rows alike for a table's policies (it is also "
        "dropped as soon as a table those policies read changes); 0 asks RLS again for every batch.",
        default=60,
    )
    sync_live_batch_interval_ms: int = _doc(
        "Shortest time between two feed batches the live channel evaluates, in ms: changes committed meanwhile are "
        "evaluated together, so a stream of writes costs the hub at most one batch per interval; a poke waits "
        "at most this long more.",
        default=50,
    )

    # --- sync: bad input -----------------------------------------------------------------------------------
    sync_json_max_depth: int = _doc(
        "Deepest nesting of arrays and objects in a sync request body (and the WatermelonDB `migration` "
        "parameter); deeper is refused with 400 before it is parsed.",
        default=64,
    )

    # --- sync: load limits (one user must not starve the others) ------------------------------------------
    sync_pool_max: int = _doc(
        "Connections of the sync service's own asyncpg pool (pulls and pushes), apart from the API pool that auth, "
        "REST and /ready use; also the number of sync requests one API process runs at once.", default=8)
    sync_statement_timeout_ms: int = _doc(
        "statement_timeout of every sync statement, in ms; a pull or push that hits it is answered 503 SYNC152.",
        default=30000)
    sync_retry_after: int = _doc("Retry-After seconds of the sync 429/503 answers SYNC150, SYNC151 and SYNC152.",
                                 default=1)
    sync_per_user_max: int = _doc(
        "Sync requests one user (token `sub`) may run at once per API process; more are answered 429 SYNC150. "
        "The anon and service keys, which name no user, are bounded by the process's slots only.", default=4)
    sync_queue_ms: int = _doc(
        "How long a sync request waits for one of the process's SYNC_POOL_MAX slots, in ms, before 503 SYNC151.",
        default=2000)

    # --- HTTP limits --------------------------------------------------------------------------------------
    max_body_bytes: int = _doc("Largest request body accepted, in bytes (413 above it).", default=1_048_576)

    # --- serving: hostile connections, request log, /metrics (serving) ---------------------------------
    http_version: str = _doc(
        "HTTP version the API server speaks: `1` (HTTP/1.1: the header-read timeout covers a connection from its "
        "first byte), `2` (HTTP/2 cleartext only) or `auto` (either, by sniffing; a silent connection then escapes "
        "the header timeout). Behind a TLS proxy HTTP/2 cleartext adds nothing.", default="1")
    header_read_timeout_s: float = _doc(
        "Seconds a connection may take to send a request's headers, counted from when the server starts waiting "
        "for them (a new connection, or an idle keep-alive one): a client that sends nothing is dropped after it.",
        default=10.0)
    body_read_timeout_s: float = _doc(
        "Seconds a request may take to send its whole body once its headers are in; a slower one is answered 408 "
        "and its connection closed.", default=30.0)
    keepalive: bool = _doc(
        "Keep HTTP/1.1 connections open between requests (an idle one is still closed after HEADER_READ_TIMEOUT_S).",
        default=True)
    max_connections: int = _doc(
        "Connections one API worker process holds at once (granian's backpressure); more wait in the listen "
        "backlog. Live-channel sockets count too.", default=12000)
    connection_headroom: int = _doc(
        "Of MAX_CONNECTIONS, connections that requests still sending their body may never take: when the others "
        "are all taken, the request that has been sending its body longest is answered 408, so new clients "
        "always find a free connection.", default=1000)
    access_log: bool = _doc(
        "Write one line per request to the `tuskbase.access` logger (method, path with secret parameters masked, "
        "status, duration, request id, user id); JSON with LOG_FORMAT=json.", default=True)
    metrics_access: str = _doc(
        "Who may read /metrics: `public` (anyone who reaches the port), `token` (`Authorization: Bearer "
        "<METRICS_TOKEN>`) or `off` (404).", default="public")
    metrics_token: str = _doc("Bearer token /metrics asks for when METRICS_ACCESS=token (>= 16 chars).", default="")
    backlog: int = _doc("Listen backlog: connections the kernel queues before the server accepts them.",
                        default=2048)

    # --- workers -----------------------------------------------------------------------------------------
    broker_url: str = _doc(
        "Dramatiq broker: empty for the Postgres broker in the same database, or an amqp:// URL.", default=""
    )
    worker_processes: int = _doc("Dramatiq worker processes.", default=1)
    worker_threads: int = _doc("Dramatiq threads per worker process.", default=4)

    # --- dev stack (`tuskbase dev`) ----------------------------------------------------------------------
    dev_restart_max_delay: int = _doc(
        "Longest wait, in seconds, before `tuskbase dev` restarts a child process (API, worker, feed) that "
        "died; the wait doubles from 0.5 s with each quick death in a row.",
        default=30,
    )

    def __post_init__(self) -> None:
        _check(1 <= self.port <= 65535, "PORT", "must be a port number from 1 to 65535")
        _check(1 <= self.db_port <= 65535, "DB_PORT", "must be a port number from 1 to 65535")
        _check(self.log_format in ("text", "json"), "LOG_FORMAT", "must be `text` or `json`")
        _check(self.workers >= 1, "WORKERS", "must be at least 1")
        _check(1 <= self.db_pool_min <= self.db_pool_max, "DB_POOL_MIN", "must be >= 1 and <= DB_POOL_MAX")
        _check(self.sync_feed_batch >= 1, "SYNC_FEED_BATCH", "must be at least 1")
        _check(self.sync_feed_poll_ms >= 1, "SYNC_FEED_POLL_MS", "must be at least 1")
        _check(self.sync_feed_standby_ms >= 10, "SYNC_FEED_STANDBY_MS", "must be at least 10")
        _check(self.sync_retention_hours >= 1, "SYNC_RETENTION_HOURS", "must be at least 1")
        _check(1 <= self.sync_pull_limit_default <= self.sync_pull_limit_max, "SYNC_PULL_LIMIT_DEFAULT",
               "must be >= 1 and <= SYNC_PULL_LIMIT_MAX")
        _check(self.sync_push_max_rows >= 1, "SYNC_PUSH_MAX_ROWS", "must be at least 1")
        _check(self.sync_live_max_connections >= 1, "SYNC_LIVE_MAX_CONNECTIONS", "must be at least 1")
        _check(1 <= self.sync_live_max_per_user <= self.sync_live_max_connections, "SYNC_LIVE_MAX_PER_USER",
               "must be >= 1 and <= SYNC_LIVE_MAX_CONNECTIONS")
        _check(self.sync_live_check_max >= 1, "SYNC_LIVE_CHECK_MAX", "must be at least 1")
        _check(1 <= self.sync_pool_max <= 1000, "SYNC_POOL_MAX", "must be from 1 to 1000")
        _check(self.sync_statement_timeout_ms >= 100, "SYNC_STATEMENT_TIMEOUT_MS", "must be at least 100")
        _check(1 <= self.sync_retry_after <= 3600, "SYNC_RETRY_AFTER", "must be from 1 to 3600")
        _check(self.sync_per_user_max >= 1, "SYNC_PER_USER_MAX", "must be at least 1")
        _check(self.sync_queue_ms >= 0, "SYNC_QUEUE_MS", "must be >= 0")
        _check(self.sync_live_visibility_cache_seconds >= 0, "SYNC_LIVE_VISIBILITY_CACHE_SECONDS",
               "must be 0 or more")
        _check(0 <= self.sync_live_batch_interval_ms <= 10_000, "SYNC_LIVE_BATCH_INTERVAL_MS",
               "must be between 0 and 10000")
        _check(not self.sync_slot or (self.sync_slot.replace("_", "").isalnum() and self.sync_slot.islower()
                                      and len(self.sync_slot) <= 63),
               "SYNC_SLOT", "must be lowercase letters, digits and underscores, at most 63")
        _check(8 <= self.sync_json_max_depth <= 512, "SYNC_JSON_MAX_DEPTH",
               "must be from 8 to 512 (the JSON parsers recurse, and give up near 1000 levels)")
        _check(self.max_body_bytes >= 1024, "MAX_BODY_BYTES", "must be at least 1024")
        _check(self.dev_restart_max_delay >= 1, "DEV_RESTART_MAX_DELAY", "must be at least 1")
        _check(self.jwt_exp >= 60, "JWT_EXP", "must be at least 60 seconds")
        _check(
            not self.jwt_secret or len(self.jwt_secret) >= 32, "JWT_SECRET", "must be at least 32 characters"
        )
        _check(self.jwt_algorithm in ("HS256", "ES256"), "JWT_ALGORITHM", "must be `HS256` or `ES256`")
        _check(self.auth_password_min_length >= 6, "AUTH_PASSWORD_MIN_LENGTH", "must be at least 6")
        _check(
            set(filter(None, self.auth_password_required_characters.replace(" ", "").split(",")))
            <= {"lower", "upper", "digits", "symbols"},
            "AUTH_PASSWORD_REQUIRED_CHARACTERS", "must list some of lower, upper, digits, symbols",
        )
        _check(self.auth_refresh_reuse_interval >= 0, "AUTH_REFRESH_REUSE_INTERVAL", "must be >= 0")
        _check(self.auth_session_inactivity_timeout >= 0, "AUTH_SESSION_INACTIVITY_TIMEOUT", "must be >= 0")
        _check(self.auth_session_timebox >= 0, "AUTH_SESSION_TIMEBOX", "must be >= 0")
        _check(self.auth_otp_exp >= 60, "AUTH_OTP_EXP", "must be at least 60 seconds")
        _check(6 <= self.auth_otp_length <= 10, "AUTH_OTP_LENGTH", "must be from 6 to 10")
        _check(self.auth_rate_limit_window >= 1, "AUTH_RATE_LIMIT_WINDOW", "must be at least 1 second")
        _check(self.auth_rate_limit_per_ip >= 1, "AUTH_RATE_LIMIT_PER_IP", "must be at least 1")
        _check(self.auth_rate_limit_per_identifier >= 1, "AUTH_RATE_LIMIT_PER_IDENTIFIER", "must be at least 1")
        if self.auth_mail_templates is not None:
            _check(self.auth_mail_templates.is_dir(), "AUTH_MAIL_TEMPLATES",
                   f"folder {self.auth_mail_templates} does not exist")
        if self.auth_sms_webhook_url:
            _check(urlsplit(self.auth_sms_webhook_url).scheme in ("http", "https"), "AUTH_SMS_WEBHOOK_URL",
                   "must be an http(s) URL")
        _check(self.auth_captcha_provider in ("", "hcaptcha", "turnstile"), "AUTH_CAPTCHA_PROVIDER",
               "must be empty, hcaptcha or turnstile")
        _check(not self.auth_captcha_provider or bool(self.auth_captcha_secret), "AUTH_CAPTCHA_SECRET",
               "is required when AUTH_CAPTCHA_PROVIDER is set")
        if self.smtp_url:
            scheme = urlsplit(self.smtp_url).scheme
            _check(scheme in ("smtp", "smtps"), "SMTP_URL", "must be an smtp:// or smtps:// URL")
        _check(not self.auth_hook_custom_access_token
               or re.fullmatch(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*", self.auth_hook_custom_access_token) is not None,
               "AUTH_HOOK_CUSTOM_ACCESS_TOKEN", "must be a lower-case schema.function name")
        if self.auth_oidc_providers:
            _check(_oidc_providers_ok(self.auth_oidc_providers), "AUTH_OIDC_PROVIDERS",
                   'must be JSON {"name": {"issuer": URL, "client_id": ..., "client_secret": ...}} (or, instead of '
                   'issuer, authorization_endpoint, token_endpoint and userinfo_endpoint)')
        _check(bool(self.rest_schema_list), "REST_SCHEMAS", "must name at least one schema")
        _check(self.rest_max_rows >= 0, "REST_MAX_ROWS", "must be >= 0")
        _check(self.rest_compress_min_bytes >= 0, "REST_COMPRESS_MIN_BYTES", "must be >= 0")
        _check(1 <= self.rest_batch_max <= 1000, "REST_BATCH_MAX", "must be from 1 to 1000")
        _check(self.rest_plan_cache_size >= 16, "REST_PLAN_CACHE_SIZE", "must be at least 16")
        _check(1 <= self.unavailable_retry_after <= 3600, "UNAVAILABLE_RETRY_AFTER", "must be from 1 to 3600")
        _check(self.rest_max_query_bytes >= 1024, "REST_MAX_QUERY_BYTES", "must be at least 1024")
        _check(self.rest_max_query_terms >= 64, "REST_MAX_QUERY_TERMS", "must be at least 64")
        _check(self.http_version in ("1", "2", "auto"), "HTTP_VERSION", "must be `1`, `2` or `auto`")
        _check(0.1 <= self.header_read_timeout_s <= 60, "HEADER_READ_TIMEOUT_S", "must be from 0.1 to 60 seconds")
        _check(self.body_read_timeout_s >= 0.1, "BODY_READ_TIMEOUT_S", "must be at least 0.1 seconds")
        _check(self.max_connections >= 16, "MAX_CONNECTIONS", "must be at least 16")
        _check(1 <= self.connection_headroom < self.max_connections, "CONNECTION_HEADROOM",
               "must be at least 1 and less than MAX_CONNECTIONS")
        _check(self.backlog >= 128, "BACKLOG", "must be at least 128")
        _check(self.metrics_access in ("public", "token", "off"), "METRICS_ACCESS",
               "must be `public`, `token` or `off`")
        _check(self.metrics_access != "token" or len(self.metrics_token) >= 16, "METRICS_TOKEN",
               "must be at least 16 characters when METRICS_ACCESS=token")
        if self.database_url:
            scheme = urlsplit(self.database_url).scheme
            _check(scheme in ("postgres", "postgresql"), "DATABASE_URL", "must be a postgresql:// URL")
        if self.broker_url:
            scheme = urlsplit(self.broker_url).scheme
            _check(scheme in ("amqp", "amqps"), "BROKER_URL", "must be empty (Postgres broker) or amqp://")
        if self.app_dir is not None:
            _check(self.app_dir.is_dir(), "APP_DIR", f"folder {self.app_dir} does not exist")

    @property
    def rest_schema_list(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.rest_schemas.split(",") if name.strip())

    @property
    def embedded(self) -> bool:
        """True when Tuskbase runs its own Postgres under data_dir."""
        return not self.database_url

    @property
    def api_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    def replace(self, **changes: typing.Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise SettingsError(f"{PREFIX}{name} {message}")


def _oidc_providers_ok(raw: str) -> bool:
    import json

    try:
        providers = json.loads(raw)
    except ValueError:
        return False
    return isinstance(providers, dict) and all(
        isinstance(name, str) and name.isidentifier() and isinstance(conf, dict)
        and all(isinstance(conf.get(key), str) and conf[key] for key in ("client_id", "client_secret"))
        and ((isinstance(conf.get("issuer"), str) and bool(conf["issuer"]))  # OpenID Connect, with discovery
             or all(isinstance(conf.get(key), str) and conf[key]  # plain OAuth 2.0 (GitHub, ...)
                    for key in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint")))
        for name, conf in providers.items()
    )


def _convert(name: str, raw: str, kind: typing.Any) -> typing.Any:
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{PREFIX}{name.upper()} must be a whole number, got {raw!r}") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{PREFIX}{name.upper()} must be a number, got {raw!r}") from None
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{PREFIX}{name.upper()} must be true or false, got {raw!r}")
    if kind is Path or kind == (Path | None):
        return Path(raw) if raw else None
    return raw


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the environment (or the mapping given, for tests)."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(Settings)
    values: dict[str, typing.Any] = {}
    for f in dataclasses.fields(Settings):
        raw = environ.get(PREFIX + f.name.upper())
        if raw is not None:
            values[f.name] = _convert(f.name, raw.strip(), hints[f.name])
    return Settings(**{k: v for k, v in values.items() if v is not None or k == "app_dir"})


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, doc) for every setting: used by the README and `tuskbase settings`."""
    rows = []
    for f in dataclasses.fields(Settings):
        default = "" if f.default is dataclasses.MISSING else str(f.default or "")
        rows.append((PREFIX + f.name.upper(), default, f.metadata.get("doc", "")))
    return rows
