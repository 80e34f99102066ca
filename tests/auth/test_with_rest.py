"""Tokens issued by auth drive REST and RLS: auth.uid() is the signed-in user, other users' rows stay
invisible, and a policy calling auth.session_is_active() stops a revoked device before its token expires."""

from __future__ import annotations

import time

import httpx
import pytest
from postgrest import ReturnMethod, SyncPostgrestClient

from tests.auth.conftest import PASSWORD, make_client

NOTES = """
create table public.notes (
  id bigint generated always as identity primary key,
  owner_id uuid not null default auth.uid(),
  body text not null
);
alter table public.notes enable row level security;
grant select, insert on public.notes to authenticated;
grant usage on sequence public.notes_id_seq to authenticated;
-- (select ...) makes Postgres evaluate the helpers once per statement instead of once per row.
create policy notes_own on public.notes for all to authenticated
  using ((select auth.session_is_active()) and owner_id = (select auth.uid()))
  with check ((select auth.session_is_active()) and owner_id = (select auth.uid()));
"""


def rest(api, token: str) -> SyncPostgrestClient:
    return SyncPostgrestClient(f"{api.url}/rest/v1", headers=api.headers(token))


def test_auth_tokens_drive_rls_over_rest(api):
    with make_client(api) as ada_auth, make_client(api) as bob_auth:
        ada = ada_auth.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
        bob = bob_auth.sign_up({"email": "bob@example.com", "password": PASSWORD}).session
    # The todo app's select policy reads lists itself, so the new row is read back in a second request.
    rest(api, ada.access_token).table("lists").insert({"title": "Ada's list"}, returning=ReturnMethod.minimal).execute()
    mine = rest(api, ada.access_token).table("lists").select("*").execute().data
    assert [(r["title"], r["owner_id"]) for r in mine] == [("Ada's list", ada.user.id)]  # default auth.uid()
    assert rest(api, bob.access_token).table("lists").select("*").execute().data == []
    # Bob cannot write a row in Ada's name either.
    refused = httpx.post(f"{api.url}/rest/v1/lists", json={"title": "forged", "owner_id": ada.user.id},
                         headers=api.headers(bob.access_token))
    assert refused.status_code in (401, 403) and refused.json()["code"] == "42501"


@pytest.fixture
def notes(admin):
    admin.execute(NOTES)


def _wait_for_table(api, token):
    deadline = time.monotonic() + 10
    while (answer := httpx.get(f"{api.url}/rest/v1/notes", headers=api.headers(token))).status_code != 200:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.05)
    return answer.json()


def test_revoked_device_is_refused_by_policies_before_its_token_expires(notes, api, admin):
    with make_client(api) as phone, make_client(api) as laptop:
        lost = phone.sign_up({"email": "ada@example.com", "password": PASSWORD}).session
        kept = laptop.sign_in_with_password({"email": "ada@example.com", "password": PASSWORD}).session
        assert _wait_for_table(api, lost.access_token) == []
        rest(api, lost.access_token).table("notes").insert({"body": "from the phone"}).execute()
        assert len(rest(api, kept.access_token).table("notes").select("*").execute().data) == 1

        sessions = httpx.get(f"{api.url}/auth/v1/sessions", headers=api.headers(kept.access_token)).json()["sessions"]
        lost_id = next(s["id"] for s in sessions if not s["current"])
        assert httpx.delete(f"{api.url}/auth/v1/sessions/{lost_id}",
                            headers=api.headers(kept.access_token)).status_code == 204

    # The phone's access token is still signed and unexpired, but the policy refuses it now.
    assert api.signer.verify(lost.access_token)["session_id"] == lost_id
    assert rest(api, lost.access_token).table("notes").select("*").execute().data == []
    blocked = httpx.post(f"{api.url}/rest/v1/notes", json={"body": "thief"}, headers=api.headers(lost.access_token))
    assert blocked.status_code in (401, 403)
    assert [r["body"] for r in rest(api, kept.access_token).table("notes").select("*").execute().data] == [
        "from the phone"]
    assert admin.execute("select count(*) from public.notes").fetchone()[0] == 1
