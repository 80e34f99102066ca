"""GET /auth/v1/landing: where mail links and OAuth sign-ins land when no site URL is configured.

Before it existed, the default target was the API root, a 404 after a successful confirmation. The page says
what happened, read in the browser from the fragment (`#access_token=...&type=signup`, `#error=...`) or the
query (`?code=` of PKCE, `?error=`). The server never sees the fragment and echoes nothing of the query: the
page is a constant, its script writes only fixed messages and the error's description (as text, never HTML),
and then removes the tokens from the address bar and the history. Its CSP allows that one script alone.
"""

from __future__ import annotations

import base64
import hashlib

PATH = "/auth/v1/landing"

SCRIPT = """
(function () {
  var found = new URLSearchParams(location.hash.slice(1));
  new URLSearchParams(location.search).forEach(function (value, key) { if (!found.has(key)) found.set(key, value); });
  var done = {
    signup: "Your email address is confirmed.", email: "Your email address is confirmed.",
    invite: "Your invitation is accepted.", magiclink: "You are signed in.",
    recovery: "Your password reset link is accepted: choose a new password in the app.",
    email_change: "Your new email address is confirmed."
  };
  var title = "Nothing to confirm", text = "This page shows the result of a link from an email; this one carried none.";
  if (found.get("error") || found.get("error_code")) {
    title = "That link did not work";
    text = (found.get("error_description") || found.get("error")) + ". Ask the app for a new link.";
  } else if (found.get("access_token")) {
    title = "Done";
    text = (done[found.get("type")] || "You are signed in.") + " You can return to the app.";
  } else if (found.get("code")) {
    title = "Done";
    text = "You are signed in. You can return to the app.";
  } else if (found.get("message")) {
    title = "One more step";
    text = found.get("message");
  }
  document.getElementById("title").textContent = title;
  document.getElementById("text").textContent = text;
  if (location.hash || location.search) history.replaceState(null, "", location.pathname);
})();
"""

PAGE = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tuskbase</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto; padding: 0 1rem">
<h1 id="title">Tuskbase</h1>
<p id="text">This page needs JavaScript to show the result of the link you followed.</p>
<script>{SCRIPT}</script>
</body>
</html>
""".encode()

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
HEADERS = {
    "content-security-policy": f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; "
                               "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}
