"""Counters of auth events for /metrics: what an operator watches (failed sign-ins, detected token reuse,
rate limiting), labelled by a small fixed set of event names."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS = Counter("tuskbase_auth_events_total", "Auth events", ["event"])
NAMES = ("signup", "sign_in", "sign_in_failed", "refresh", "refresh_reuse_detected", "rate_limited", "logout",
         "session_revoked", "mail_sent", "sms_sent", "mfa_verified",
         "mfa_failed")
for _name in NAMES:
    EVENTS.labels(_name)  # every series exists from the start, at 0


def count(event: str) -> None:
    EVENTS.labels(event).inc()
