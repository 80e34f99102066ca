"""Auth at /auth/v1, compatible with the Supabase Auth clients (supabase-js, supabase-py, Swift, Kotlin, Flutter).

Table of contents (one module per flow, routes in routes.py):
  signup.py     POST /signup (email + password, or anonymous)
  password.py   POST /token?grant_type=password
  sessions.py   per-device sessions, access tokens, refresh-token rotation with reuse detection
  user.py       GET/PUT /user, POST /logout (local|others|global), GET/DELETE /sessions (the user's devices),
                GET /reauthenticate, DELETE /user/identities/{id}
  magiclink.py  POST /otp, /recover, /resend, /invite, /admin/generate_link
  otp.py        the mailed codes and links; POST/GET /verify
  pkce.py       auth codes for redirect flows; POST /token?grant_type=pkce
  oauth.py      GET /authorize, GET|POST /callback, GET /user/identities/authorize,
                POST /token?grant_type=id_token (any OIDC issuer, or a plain OAuth 2.0 provider such as GitHub)
  mfa.py        TOTP factors: POST /factors, /factors/{id}/challenge, /factors/{id}/verify, DELETE /factors/{id}
  admin.py      /admin/users (service role), their sessions and factors
  ratelimit.py  429 + Retry-After on credential endpoints, counted in Postgres; captcha.py: hCaptcha/Turnstile
  mail.py       SMTP, or console + auth.mail_outbox without one; operator templates
  sms.py        SMS codes through a webhook, or console + auth.sms_outbox (phone sign-in, off by default)
  audit.py      auth.audit_log; metrics.py: tuskbase_auth_events_total; housekeeping.py: periodic cleanup
  errors.py     Supabase error codes and the two wire shapes

Policies can refuse tokens of revoked sessions with `auth.session_is_active()` (sql/0010); write it
`(select auth.session_is_active())` so Postgres evaluates it once per statement, not per row. Extensions beyond
Supabase: GET/DELETE /sessions and /admin/users/{id}/sessions; device details come from the optional request
headers X-Device-Id, X-Device-Platform, X-App-Version (else X-Client-Info and User-Agent).
"""
