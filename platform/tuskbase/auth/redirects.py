"""Where a flow may send the user back to: the site URL or an entry of the allow list, nothing else
(an open redirect would hand tokens or codes to any site)."""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

from tuskbase.auth.landing import PATH as LANDING_PATH
from tuskbase.config import Settings


def site_url(settings: Settings) -> str:
    """The default target of mail links and OAuth sign-ins: no site URL configured, a page of the API's own that
    says what happened (the API root would answer 404)."""
    return settings.auth_site_url or settings.api_url.rstrip("/") + LANDING_PATH


@lru_cache(maxsize=64)
def _patterns(raw: str) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for entry in filter(None, (e.strip() for e in raw.split(","))):
        regex = "".join(
            # `*` never crosses a host or path boundary: browsers read `\` as `/` and `@` ends userinfo.
            r"[^\s]*" if token == "**" else r"[^/?#\\@\s]*" if token == "*" else re.escape(token)
            for token in re.split(r"(\*\*|\*)", entry)
        )
        compiled.append(re.compile(regex + r"(?:[?#].*)?"))
    return tuple(compiled)


def allowed(settings: Settings, url: str) -> bool:
    site = urlsplit(site_url(settings))
    target = urlsplit(url)
    if target.scheme and (target.scheme, target.netloc) == (site.scheme, site.netloc):
        return True
    return any(p.fullmatch(url) for p in _patterns(settings.auth_redirect_urls))


def resolve(settings: Settings, redirect_to: str | None) -> str:
    """`redirect_to` when allowed, else the site URL (as Supabase does)."""
    if redirect_to and allowed(settings, redirect_to):
        return redirect_to
    return site_url(settings)
