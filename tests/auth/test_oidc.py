"""Sign-in through an OpenID Connect provider started by the test, with the real supabase_auth client:
PKCE and implicit flows, account linking by verified email, the id_token grant, and refusals of what a
misbehaving provider or a replayed callback sends."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from supabase_auth.errors import AuthApiError

from tests.auth.conftest import PASSWORD, make_client


def browse(api, url: str, stop_at: str) -> str:
    """Follow redirects like a browser until one leaves for `stop_at` (the app); returns that URL."""
    for _ in range(6):
        if url.startswith(api.settings.api_url + "/"):
            url = api.url + url.removeprefix(api.settings.api_url)  # public URL -> the test server's port
        answer = httpx.get(url, follow_redirects=False)
        assert answer.status_code in (302, 303), answer.text
        url = answer.headers["location"]
        if url.startswith(stop_at):
            return url
    raise AssertionError("too many redirects")


def test_oidc_sign_in_with_pkce(api, oidc):
    with make_client(api, flow_type="pkce") as app:
        start = app.sign_in_with_oauth({"provider": "keycloak", "options": {"redirect_to": "myapp://callback"}})
        assert "code_challenge=" in start.url
        landing = browse(api, start.url, "myapp://callback")
        query = parse_qs(urlsplit(landing).query)
        assert "code" in query and "access_token" not in landing
        session = app.exchange_code_for_session({"auth_code": query["code"][0]}).session
    user = session.user
    assert user.email == "ada@example.com" and user.email_confirmed_at is not None
    assert user.app_metadata == {"provider": "keycloak", "providers": ["keycloak"]}
    assert [(i.provider, i.id) for i in user.identities] == [("keycloak", "oidc-user-1")]
    assert user.user_metadata["full_name"] == "Ada Lovelace" and user.user_metadata["avatar_url"]
    claims = api.signer.verify(session.access_token)
    assert claims["amr"][0]["method"] == "oauth" and claims["app_metadata"]["provider"] == "keycloak"
    # Tuskbase used PKCE towards the provider too.
    assert oidc.token_requests[-1]["code_verifier"]


def test_oidc_implicit_flow_and_returning_user(api, oidc):
    with make_client(api) as app:
        first = app.sign_in_with_oauth({"provider": "keycloak", "options": {"redirect_to": "http://app.test/in"}})
        landing = browse(api, first.url, "http://app.test/in")
        assert "#access_token=" in landing
        app.initialize_from_url(landing)
        user_id = app.get_session().user.id
    with make_client(api) as again:
        second = again.sign_in_with_oauth({"provider": "keycloak"})
        again.initialize_from_url(browse(api, second.url, "http://app.test"))
        assert again.get_session().user.id == user_id


def test_oidc_links_to_the_account_with_the_same_verified_email(api, oidc, client):
    existing = client.sign_up({"email": "ada@example.com", "password": PASSWORD}).user
    with make_client(api, flow_type="pkce") as app:
        start = app.sign_in_with_oauth({"provider": "keycloak", "options": {"redirect_to": "myapp://callback"}})
        code = parse_qs(urlsplit(browse(api, start.url, "myapp://callback")).query)["code"][0]
        user = app.exchange_code_for_session({"auth_code": code}).user
    assert user.id == existing.id
    assert sorted(user.app_metadata["providers"]) == ["email", "keycloak"]
    assert client.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD}).user.id == existing.id


def test_unverified_provider_email_does_not_take_over_an_account(api, oidc, client):
    client.sign_up({"email": "ada@example.com", "password": PASSWORD})
    oidc.user = {**oidc.user, "sub": "attacker", "email_verified": False}
    with make_client(api) as app:
        start = app.sign_in_with_oauth({"provider": "keycloak", "options": {"redirect_to": "http://app.test/in"}})
        landing = browse(api, start.url, "http://app.test/in")
    assert "access_token" not in landing and "error_code=email_exists" in landing


@pytest.mark.parametrize("knob", ["nonce_override", "audience_override", "foreign_key", "expired"])
def test_misbehaving_provider_tokens_are_refused(api, oidc, knob):
    setattr(oidc, knob, "evil" if knob.endswith("override") else True)
    with make_client(api, flow_type="pkce") as app:
        start = app.sign_in_with_oauth({"provider": "keycloak", "options": {"redirect_to": "myapp://callback"}})
        landing = browse(api, start.url, "myapp://callback")
    query = parse_qs(urlsplit(landing).query)
    assert "code" not in query and query["error_code"] == ["bad_oauth_callback"], landing


def test_replayed_or_forged_callbacks_are_refused(api, oidc, auth_url):
    with make_client(api, flow_type="pkce") as app:
        start = app.sign_in_with_oauth({"provider": "keycloak", "options": {"redirect_to": "myapp://callback"}})
        to_provider = httpx.get(api.url + urlsplit(start.url).path + "?" + urlsplit(start.url).query).headers
        provider_answer = httpx.get(to_provider["location"]).headers["location"]
        callback = api.url + provider_answer.removeprefix(api.settings.api_url)
        first = httpx.get(callback).headers["location"]
        assert first.startswith("myapp://callback?code=")
        replay = httpx.get(callback).headers["location"]
        assert "bad_oauth_state" in replay and "code=" not in replay.split("?", 1)[0]
    forged = httpx.get(f"{auth_url}/callback", params={"code": "x", "state": "made-up"}).headers["location"]
    assert "error_code=bad_oauth_state" in forged


def test_unknown_provider(api, oidc, auth_url):
    answer = httpx.get(f"{auth_url}/authorize", params={"provider": "gitlab"})
    assert answer.status_code == 400 and answer.json()["error_code"] == "validation_failed"
    assert httpx.get(f"{auth_url}/settings").json()["external"]["keycloak"] is True


def test_id_token_grant(api, oidc, client):
    token = oidc.id_token(nonce=None)
    session = client.sign_in_with_id_token({"provider": "keycloak", "token": token}).session
    assert session.user.email == "ada@example.com"
    oidc.audience_override = "someone-else"
    with pytest.raises(AuthApiError) as refused:
        client.sign_in_with_id_token({"provider": "keycloak", "token": oidc.id_token(nonce=None)})
    assert refused.value.code == "bad_oauth_callback"


def test_anonymous_user_links_an_oidc_identity_and_keeps_its_id(api, oidc):
    with make_client(api, flow_type="pkce") as app:
        anonymous = app.sign_in_anonymously().user
        start = app.link_identity({"provider": "keycloak", "options": {"redirect_to": "myapp://callback"}})
        code = parse_qs(urlsplit(browse(api, start.url, "myapp://callback")).query)["code"][0]
        linked = app.exchange_code_for_session({"auth_code": code}).user
        assert linked.id == anonymous.id and linked.is_anonymous is False
        assert linked.email == "ada@example.com" and [i.provider for i in linked.identities] == ["keycloak"]
        with pytest.raises(AuthApiError) as last:
            app.unlink_identity(linked.identities[0])
        assert last.value.code == "single_identity_not_deletable"


def test_link_and_unlink_keep_accounts_apart(api, oidc, client, auth_url):
    ada = client.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
    with make_client(api, flow_type="pkce") as app:
        app.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD})
        start = app.link_identity({"provider": "keycloak", "options": {"redirect_to": "myapp://callback"}})
        code = parse_qs(urlsplit(browse(api, start.url, "myapp://callback")).query)["code"][0]
        user = app.exchange_code_for_session({"auth_code": code}).user
        assert sorted(i.provider for i in user.identities) == ["email", "keycloak"]
        keycloak = next(i for i in user.identities if i.provider == "keycloak")
        # Bob cannot take Ada's provider identity, nor delete it.
        with make_client(api, flow_type="pkce") as bob:
            bob_session = bob.sign_up({"email": "bob@example.com", "password": PASSWORD}).session
            start = bob.link_identity({"provider": "keycloak", "options": {"redirect_to": "myapp://callback"}})
            landing = browse(api, start.url, "myapp://callback")
            assert "error_code=identity_already_exists" in landing
            gone = httpx.delete(f"{auth_url}/user/identities/{keycloak.identity_id}",
                                headers=api.headers(bob_session.access_token))
            assert gone.status_code == 404
        app.unlink_identity(keycloak)
        after = app.get_user().user
        assert [i.provider for i in after.identities] == ["email"] and after.app_metadata["providers"] == ["email"]
    assert client.get_user(ada.access_token).user.email == "ada@example.com"


def test_form_post_callback(api, oidc):
    """Providers using response_mode=form_post (Apple) post code and state to /callback."""
    with make_client(api, flow_type="pkce") as app:
        start = app.sign_in_with_oauth({"provider": "keycloak", "options": {"redirect_to": "myapp://callback"}})
        to_provider = httpx.get(api.url + urlsplit(start.url).path + "?" + urlsplit(start.url).query)
        back = urlsplit(httpx.get(to_provider.headers["location"]).headers["location"])
        form = {key: values[0] for key, values in parse_qs(back.query).items()}  # code and state
        posted = httpx.post(f"{api.url}{back.path}", data=form)
        assert posted.status_code == 303
        code = parse_qs(urlsplit(posted.headers["location"]).query)["code"][0]
        assert app.exchange_code_for_session({"auth_code": code}).user.email == "ada@example.com"


def test_plain_oauth2_provider_github_style(api, oidc):
    with make_client(api, flow_type="pkce") as app:
        start = app.sign_in_with_oauth({"provider": "github", "options": {"redirect_to": "myapp://callback"}})
        assert "nonce=" not in start.url
        code = parse_qs(urlsplit(browse(api, start.url, "myapp://callback")).query)["code"][0]
        user = app.exchange_code_for_session({"auth_code": code}).user
    assert user.email == "ada@example.com" and user.email_confirmed_at is not None  # primary verified email
    assert [(i.provider, i.id) for i in user.identities] == [("github", "4242")]
    assert user.user_metadata["preferred_username"] == "ada" and user.user_metadata["avatar_url"]
    with make_client(api) as other:
        with pytest.raises(AuthApiError) as no_id_token:
            other.sign_in_with_id_token({"provider": "github", "token": oidc.id_token(nonce=None)})
        assert no_id_token.value.status == 400
