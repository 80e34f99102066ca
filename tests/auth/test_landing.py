"""GET /auth/v1/landing: where mail links land when no site URL is configured; it says what happened,
read in the browser from the fragment or query, and echoes nothing the server was sent."""

from __future__ import annotations

import json
import shutil
import subprocess

import httpx
import pytest

from tests.auth.conftest import PASSWORD
from tests.auth.test_mail_flows import follow
from tuskbase.auth import landing

ADA = "ada@example.com"
NO_SITE = {"auth_email_autoconfirm": False, "auth_site_url": "", "auth_redirect_urls": ""}


@pytest.mark.auth_settings(**NO_SITE)
def test_a_confirmation_link_lands_on_the_landing_page(client, smtp, api):
    mailbox, _port = smtp
    client.sign_up({"email": ADA, "password": PASSWORD})
    location = follow(mailbox.link(ADA), api)
    assert location.startswith(f"{api.settings.api_url}/auth/v1/landing#access_token=")
    assert "type=signup" in location
    page = httpx.get(api.url + location.removeprefix(api.settings.api_url))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.content == landing.PAGE
    assert client.sign_in_with_password({"email": ADA, "password": PASSWORD}).session


@pytest.mark.auth_settings(**NO_SITE)
def test_a_used_link_lands_on_the_landing_page_with_the_error(client, smtp, api):
    mailbox, _port = smtp
    client.sign_up({"email": ADA, "password": PASSWORD})
    link = mailbox.link(ADA)
    follow(link, api)
    location = follow(link, api)
    assert location.startswith(f"{api.settings.api_url}/auth/v1/landing")
    assert "error_description=" in location and "access_token" not in location


def test_the_page_echoes_nothing_and_allows_only_its_own_script(api):
    hostile = "?access_token=SECRET-TOKEN&error_description=%3Cscript%3Ealert(1)%3C/script%3E"
    page = httpx.get(f"{api.url}/auth/v1/landing{hostile}")
    assert page.status_code == 200
    assert page.content == landing.PAGE
    assert b"SECRET-TOKEN" not in page.content and b"alert(1)" not in page.content
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "unsafe-inline" not in csp.split(";")[1]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"


def run_page_script(fragment: str, query: str = "") -> dict[str, str]:
    """Run the page's script in Node against a stand-in for the browser's location, document and history."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    stand_in = (
        "const shown = {};"
        f"globalThis.location = {{hash: {json.dumps(fragment)}, search: {json.dumps(query)}, "
        "pathname: '/auth/v1/landing'};"
        "globalThis.document = {getElementById: (id) => ({set textContent(value) { shown[id] = value; }})};"
        "globalThis.history = {replaceState: (_s, _t, url) => { shown.replaced = url; }};"
    )
    harness = stand_in + landing.SCRIPT + "console.log(JSON.stringify(shown));"
    done = subprocess.run([node, "-e", harness], capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


def test_the_page_says_what_happened():
    confirmed = run_page_script("#access_token=SECRET-TOKEN&refresh_token=R&type=signup")
    assert confirmed["title"] == "Done"
    assert confirmed["text"] == "Your email address is confirmed. You can return to the app."
    assert "SECRET-TOKEN" not in json.dumps(confirmed)
    assert confirmed["replaced"] == "/auth/v1/landing", "the tokens stay in the address bar"

    failed = run_page_script("#error=access_denied&error_code=otp_expired"
                             "&error_description=Email+link+is+invalid+or+has+expired")
    assert failed["title"] == "That link did not work"
    assert failed["text"] == "Email link is invalid or has expired. Ask the app for a new link."

    assert run_page_script("", "?code=abc")["text"] == "You are signed in. You can return to the app."
    assert run_page_script("")["title"] == "Nothing to confirm"
