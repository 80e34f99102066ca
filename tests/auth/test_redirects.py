"""The redirect allow list: the site URL's origin and the listed patterns, nothing that only looks alike."""

from __future__ import annotations

import pytest

from tuskbase.auth import redirects
from tuskbase.config import Settings

SETTINGS = Settings(jwt_secret="s" * 40, auth_site_url="https://app.example",
                    auth_redirect_urls="myapp://callback, https://*.example.com/auth/**, http://localhost:3000/*")


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://app.example/welcome?x=1", True),
    ("myapp://callback", True),
    ("myapp://callback?x=1", True),
    ("https://web.example.com/auth/done", True),
    ("https://web.example.com/auth/a/b#frag", True),
    ("http://localhost:3000/home", True),
    ("http://localhost:3000/a/b", False),
    ("https://app.example.evil.com/", False),
    ("http://app.example/", False),
    ("myapp://callback.evil", False),
    ("https://evil.com\\.example.com/auth/x", False),
    ("https://evil.com@web.example.com/auth/x", False),
    ("https://evil.com/.example.com/auth/x", False),
    ("https://evil.com?.example.com/auth/x", False),
    ("javascript:alert(1)", False),
])
def test_allowed(url, allowed):
    assert redirects.allowed(SETTINGS, url) is allowed
    assert redirects.resolve(SETTINGS, url) == (url if allowed else "https://app.example")
