-- What a DBA reading the auth schema in psql (\d+, \df+) needs to know.
comment on function auth.session_is_active() is
  'True when the request token names a live session (not signed out, not revoked as a lost device, user neither '
  'deleted nor banned). Use in policies as (select auth.session_is_active()) so it runs once per statement.';
comment on function auth.email() is 'The email claim of the request token (Supabase''s older helper).';
comment on table auth.sessions is
  'One row per signed-in device: device_id, platform, app_version from the X-Device-Id, X-Device-Platform and '
  'X-App-Version headers (else X-Client-Info), user_agent, ip, last_seen_at (refresh and GET /user).';
comment on table auth.refresh_tokens is
  'Rotating refresh tokens, SHA-256 only; a revoked token used after the reuse interval revokes its session.';
comment on table auth.one_time_tokens is
  'Mailed and texted codes: token_hash = sha256 hex of (email or phone digits || code), also the link token.';
comment on table auth.rate_limits is 'Fixed-window counters of the credential endpoints (bucket ip:<endpoint> or id:<endpoint>).';
comment on table auth.mail_outbox is 'Mails kept when no SMTP server is configured (tuskbase dev).';
comment on table auth.sms_outbox is 'SMS kept when no SMS webhook is configured (tuskbase dev).';
