"""Operator mail templates (TUSKBASE_AUTH_MAIL_TEMPLATES) with Supabase's placeholders, over a real SMTP server."""

from __future__ import annotations

import pytest

from tests.auth.conftest import PASSWORD, Mailbox

ADA = "ada@example.com"
TEMPLATES = {
    "magiclink.html": "Subject: Sign in to Tusk Todo\n"
                      "<p>Hi {{ .Email }}, <a href=\"{{ .ConfirmationURL }}\">sign in</a> or type {{.Token}}.</p>",
    "recovery.txt": "Subject: Reset your Tusk Todo password\nCode {{ .Token }} for {{ .Email }} ({{ .Unknown }})",
}


@pytest.fixture
def settings(settings, tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    for name, text in TEMPLATES.items():
        (folder / name).write_text(text)
    return settings.replace(auth_mail_templates=folder)


def test_mail_templates_with_supabase_placeholders(client, smtp, admin_api):
    mailbox, _port = smtp
    admin_api.create_user({"email": ADA, "password": PASSWORD, "email_confirm": True})
    client.sign_in_with_otp({"email": ADA})
    message = mailbox.wait_for(ADA)
    assert message["Subject"] == "Sign in to Tusk Todo"
    html_part = message.get_body(("html",)).get_content()
    code = mailbox.code(ADA)  # the plain-text part keeps the built-in text
    assert f"Hi {ADA}," in html_part and f"type {code}." in html_part
    assert "/auth/v1/verify?token=" in html_part and "&amp;type=magiclink" in html_part

    client.reset_password_for_email(ADA)
    recovery = mailbox.wait_for(ADA, 2)
    assert recovery["Subject"] == "Reset your Tusk Todo password"
    text = Mailbox.body(recovery)
    assert text.startswith("Code ") and f"for {ADA} ({{{{ .Unknown }}}})" in text
    assert client.verify_otp({"email": ADA, "token": text.split()[1], "type": "recovery"}).session
