"""Auth test machinery: auth settings per test (marker), the real supabase_auth clients, a real SMTP server."""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from supabase_auth import SyncGoTrueAdminAPI, SyncGoTrueClient

from tests.auth.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, Server
from tuskbase.config import Settings

AUTH_DEFAULTS: dict[str, Any] = {
    "auth_email_autoconfirm": True,
    "auth_anonymous_enabled": True,
    "auth_redirect_urls": "myapp://callback,http://app.test/**",
    "auth_site_url": "http://app.test",
}
PASSWORD = "correct-horse-battery-9"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "auth_settings(**fields): Settings fields for this auth test's API")


@pytest.fixture
def auth_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("auth_settings")
    return {**AUTH_DEFAULTS, **(marker.kwargs if marker else {})}


@pytest.fixture
def settings(settings: Settings, auth_overrides: dict[str, Any], request: pytest.FixtureRequest) -> Settings:
    overrides = dict(auth_overrides)
    if "smtp" in request.fixturenames:
        _mailbox, port = request.getfixturevalue("smtp")
        overrides["smtp_url"] = f"smtp://127.0.0.1:{port}"
    if "oidc" in request.fixturenames:
        provider = request.getfixturevalue("oidc")
        overrides["auth_oidc_providers"] = json.dumps({
            "keycloak": {"issuer": provider.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
            # The same server also plays a plain OAuth 2.0 provider with GitHub's endpoints.
            "github": {"authorization_endpoint": f"{provider.issuer}/authorize",
                       "token_endpoint": f"{provider.issuer}/token", "userinfo_endpoint": f"{provider.issuer}/user",
                       "emails_endpoint": f"{provider.issuer}/user/emails", "scopes": "openid read:user user:email",
                       "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        })
    return settings.replace(**overrides)


@pytest.fixture
def auth_url(api: Any) -> str:
    return f"{api.url}/auth/v1"


def make_client(api: Any, **options: Any) -> SyncGoTrueClient:
    return SyncGoTrueClient(
        url=f"{api.url}/auth/v1",
        headers={"apikey": api.anon_key, "Authorization": f"Bearer {api.anon_key}"},
        auto_refresh_token=False,
        **options,
    )


@pytest.fixture
def client(api: Any) -> Iterator[SyncGoTrueClient]:
    with make_client(api) as gotrue:
        yield gotrue


@pytest.fixture
def admin_api(api: Any) -> Iterator[SyncGoTrueAdminAPI]:
    key = api.service_key
    with SyncGoTrueAdminAPI(url=f"{api.url}/auth/v1",
                            headers={"apikey": key, "Authorization": f"Bearer {key}"}) as admin:
        yield admin


def auth_metric(api: Any, event: str) -> float:
    """Current value of tuskbase_auth_events_total{event=...} as /metrics shows it."""
    import httpx

    text = httpx.get(f"{api.url}/metrics").text
    found = re.search(r'^tuskbase_auth_events_total\{event="' + event + r'"\} ([0-9.e+]+)$', text, re.M)
    assert found, f"no auth metric for {event}"
    return float(found.group(1))


# --- a real SMTP server -------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """Mails the local SMTP server received, newest last."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.lock.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, recipient: str, count: int = 1, timeout: float = 10) -> email.message.EmailMessage:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                mine = [m for m in self.messages if m["To"] == recipient]
                if len(mine) >= count:
                    return mine[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no mail #{count} for {recipient} within {timeout}s")
                self.lock.wait(left)

    @staticmethod
    def body(message: email.message.EmailMessage) -> str:
        return message.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    def code(self, recipient: str, count: int = 1) -> str:
        found = re.search(r"Your code: (\d+)", self.body(self.wait_for(recipient, count)))
        assert found, "the mail carries no code"
        return found.group(1)

    def link(self, recipient: str, count: int = 1) -> str:
        found = re.search(r"(http://\S+/auth/v1/verify\?\S+)", self.body(self.wait_for(recipient, count)))
        assert found, "the mail carries no link"
        return found.group(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture
def oidc() -> Iterator[Provider]:
    """A local OIDC provider (issuer http://127.0.0.1:<port>) that Tuskbase is configured to trust as `keycloak`."""
    port = _free_port()
    provider = Provider(issuer=f"http://127.0.0.1:{port}")
    with Server(provider.app(), port):
        yield provider
