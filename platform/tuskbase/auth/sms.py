"""Outgoing SMS: POSTed as JSON {phone, message} to TUSKBASE_AUTH_SMS_WEBHOOK_URL (a bridge to the operator's SMS
provider), else printed to the console and kept in auth.sms_outbox (tuskbase dev)."""

from __future__ import annotations

import logging

import asyncpg
import httpx

from tuskbase.auth import errors, metrics, store
from tuskbase.config import Settings

log = logging.getLogger("tuskbase.auth.sms")
INSERT_OUTBOX = "insert into auth.sms_outbox (recipient, body) values ($1, $2)"
WEBHOOK_TIMEOUT = 10.0


async def send(settings: Settings, pool: asyncpg.Pool, phone: str, message: str) -> None:
    metrics.count("sms_sent")
    if not settings.auth_sms_webhook_url:
        log.info("sms to +%s: %s", phone, message)
        async with store.transaction(pool) as conn:
            await conn.execute(INSERT_OUTBOX, phone, message)
        return
    try:
        async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT) as client:
            answer = await client.post(settings.auth_sms_webhook_url, json={"phone": "+" + phone, "message": message})
        answer.raise_for_status()
    except httpx.HTTPError as error:
        log.error("sending an SMS to +%s failed: %s", phone, error)
        raise errors.AuthError(500, "sms_send_failed", "Error sending SMS") from None
