"""Outgoing mail: SMTP when `TUSKBASE_SMTP_URL` is set, else the console plus `auth.mail_outbox` so a developer
running `tuskbase dev` can click the link."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from tuskbase.auth import errors, metrics, store
from tuskbase.config import Settings

log = logging.getLogger("tuskbase.auth.mail")
INSERT_OUTBOX = "insert into auth.mail_outbox (recipient, subject, body) values ($1, $2, $3)"
SMTP_TIMEOUT = 15


def _send_smtp(settings: Settings, message: EmailMessage) -> None:
    url = urlsplit(settings.smtp_url)
    options = parse_qs(url.query)
    host = url.hostname or "localhost"
    if url.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, url.port or 465, timeout=SMTP_TIMEOUT,
                                                context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(host, url.port or 25, timeout=SMTP_TIMEOUT)
    with client:
        if url.scheme == "smtp" and options.get("starttls", ["false"])[0].lower() in ("1", "true", "yes"):
            client.starttls(context=ssl.create_default_context())
        if url.username:
            client.login(unquote(url.username), unquote(url.password or ""))
        client.send_message(message)


PLACEHOLDER = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


def render(settings: Settings, kind: str, values: dict[str, str], subject: str, text: str
           ) -> tuple[str, str, str | None]:
    """(subject, text, html) of a mail: the operator's template for `kind` if there is one, else the built-in
    text. Templates use Supabase's placeholders ({{ .Token }}, {{ .ConfirmationURL }}, ...); values are
    HTML-escaped in .html templates."""
    folder = settings.auth_mail_templates
    if folder is None:
        return subject, text, None
    for suffix in ("html", "txt"):
        path = folder / f"{kind}.{suffix}"
        if path.is_file():
            break
    else:
        return subject, text, None
    raw = path.read_text()
    first, _, rest = raw.partition("\n")
    if first.lower().startswith("subject:"):
        subject, raw = first.split(":", 1)[1].strip(), rest.lstrip("\n")
    quote = html.escape if suffix == "html" else (lambda value: value)
    rendered = PLACEHOLDER.sub(lambda m: quote(values.get(m.group(1), m.group(0))), raw)
    return (subject, text, rendered) if suffix == "html" else (subject, rendered, None)


async def send(settings: Settings, pool: asyncpg.Pool, recipient: str, subject: str, body: str,
               html_body: str | None = None) -> None:
    metrics.count("mail_sent")
    if not settings.smtp_url:
        log.info("mail to %s: %s\n%s", recipient, subject, body)
        async with store.transaction(pool) as conn:
            await conn.execute(INSERT_OUTBOX, recipient, subject, body)
        return
    message = EmailMessage()
    message["From"] = settings.smtp_sender
    message["To"] = recipient
    message["Subject"] = subject
    message.set_content(body)
    if html_body is not None:
        message.add_alternative(html_body, subtype="html")
    try:
        await asyncio.to_thread(_send_smtp, settings, message)
    except (OSError, smtplib.SMTPException) as error:
        log.error("sending mail to %s failed: %s", recipient, error)
        raise errors.AuthError(500, errors.UNEXPECTED_FAILURE, "Error sending email") from None
