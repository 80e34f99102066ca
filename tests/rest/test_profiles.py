"""Accept-Profile / Content-Profile choose among the exposed schemas (TUSKBASE_REST_SCHEMAS)."""

from __future__ import annotations

import psycopg
import pytest
from postgrest import SyncPostgrestClient
from postgrest.exceptions import APIError

from tests.conftest import TEST_JWT_SECRET, TODO_APP
from tests.rest.conftest import ALICE
from tuskbase.config import Settings

EXTRA = """
create schema extra;
grant usage on schema extra to anon, authenticated, service_role;
create table extra.notes (id serial primary key, body text not null, owner_id uuid not null default auth.uid());
alter table extra.notes enable row level security;
grant select, insert on extra.notes to authenticated;
grant usage on sequence extra.notes_id_seq to authenticated;
create policy notes_own on extra.notes for all to authenticated using (owner_id = auth.uid())
  with check (owner_id = auth.uid());
create table public.notes (id serial primary key, body text);
grant select on public.notes to authenticated;
insert into public.notes (body) values ('public note');
"""


@pytest.fixture
def settings(database, tmp_path):
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(EXTRA)
    return Settings(database_url=database, data_dir=tmp_path / "data", app_dir=TODO_APP, jwt_secret=TEST_JWT_SECRET,
                    db_pool_min=1, db_pool_max=4, rest_schemas="public, extra")


def test_profiles_choose_the_schema(api, admin):
    headers = api.headers(api.user_token(ALICE))
    public = SyncPostgrestClient(f"{api.url}/rest/v1", headers=headers)
    extra = SyncPostgrestClient(f"{api.url}/rest/v1", headers=headers, schema="extra")
    assert public.table("notes").select("body").execute().data == [{"body": "public note"}]
    assert extra.table("notes").select("body").execute().data == []
    extra.table("notes").insert({"body": "in extra"}).execute()
    assert extra.table("notes").select("body").execute().data == [{"body": "in extra"}]
    assert admin.execute("select count(*) from extra.notes").fetchone()[0] == 1
    assert admin.execute("select count(*) from public.notes").fetchone()[0] == 1
    hidden = SyncPostgrestClient(f"{api.url}/rest/v1", headers=headers, schema="tuskbase")
    with pytest.raises(APIError) as caught:
        hidden.table("persisted_queries").select("*").execute()
    assert caught.value.code == "PGRST106"
