"""The custom access token hook (as Supabase's): a SQL function adds claims that RLS can read; a hook that
tampers with fixed claims or fails stops the sign-in instead of issuing a wrong token."""

from __future__ import annotations

import pytest
from supabase_auth.errors import AuthApiError

from tests.auth.conftest import PASSWORD

HOOK = """
create table public.user_roles (user_id uuid primary key, user_role text not null);
create function public.token_hook(event jsonb) returns jsonb language plpgsql as $$
declare
  claims jsonb := event -> 'claims';
begin
  claims := claims || jsonb_build_object('user_role', coalesce(
    (select user_role from public.user_roles where user_id = (event ->> 'user_id')::uuid), 'member'),
    'signed_in_with', event ->> 'authentication_method');
  if claims ->> 'email' = 'mallory@example.com' then
    claims := claims || '{"role": "service_role"}';
  end if;
  if claims ->> 'email' = 'eve@example.com' then
    claims := jsonb_set(claims, '{sub}', '"00000000-0000-0000-0000-000000000000"');
  end if;
  return jsonb_build_object('claims', claims);
end
$$;
grant select on public.user_roles to tuskbase_auth;
grant execute on function public.token_hook(jsonb) to tuskbase_auth;
"""


@pytest.fixture
def hook(admin):
    admin.execute(HOOK)


@pytest.mark.auth_settings(auth_hook_custom_access_token="public.token_hook")
def test_hook_adds_claims(hook, client, api, admin):
    session = client.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
    claims = api.signer.verify(session.access_token)
    assert claims["user_role"] == "member" and claims["signed_in_with"] == "password"
    admin.execute("insert into public.user_roles values (%s, 'admin')", (session.user.id,))
    refreshed = client.refresh_session(session.refresh_token).session
    assert api.signer.verify(refreshed.access_token)["user_role"] == "admin"
    # The hook may set the role among the request roles...
    mallory = client.sign_up({"email": "mallory@example.com", "password": PASSWORD}).session
    assert api.signer.verify(mallory.access_token)["role"] == "service_role"
    # ...but not change whom the token is for.
    with pytest.raises(AuthApiError) as refused:
        client.sign_up({"email": "eve@example.com", "password": PASSWORD})
    assert refused.value.status == 500 and "hook" in refused.value.message
    assert admin.execute("select count(*) from auth.users where email = 'eve@example.com'").fetchone()[0] == 0


@pytest.mark.auth_settings(auth_hook_custom_access_token="public.missing_hook")
def test_missing_hook_fails_closed(client):
    with pytest.raises(AuthApiError) as refused:
        client.sign_up({"email": "ada@example.com", "password": PASSWORD})
    assert refused.value.status == 500 and refused.value.code == "unexpected_failure"
