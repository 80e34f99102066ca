"""Tables with a composite primary key and WatermelonDB: `sync.enable` says that WatermelonDB cannot sync them (a
WARNING, which `tuskbase migrate` shows), and the README's surrogate key recipe makes such a table sync with the
real client, both ways."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass

import psycopg
import pytest

from tests.conftest import TEST_JWT_SECRET, TODO_APP, create_database, drop_database
from tests.watermelon.conftest import settle
from tests.watermelon.test_watermelon_sync import make_list

# The README's recipe ("Composite keys"), for the todo app's list_members.
SURROGATE_KEY = """
alter table public.list_members drop constraint list_members_pkey;
alter table public.list_members add column id uuid not null default gen_random_uuid();
alter table public.list_members add primary key (id);
alter table public.list_members add constraint list_members_pair unique (list_id, user_id);
"""


@dataclass
class Raised:
    message_primary: str
    message_hint: str


def warnings_of(admin, statement: str) -> list[Raised]:
    seen: list[Raised] = []

    def keep(notice: psycopg.errors.Diagnostic) -> None:
        if notice.severity_nonlocalized == "WARNING":  # read now: the notice is freed after the handler
            seen.append(Raised(notice.message_primary or "", notice.message_hint or ""))

    admin.add_notice_handler(keep)
    try:
        admin.execute(statement)
    finally:
        admin.remove_notice_handler(keep)
    return seen


def test_enabling_a_served_table_with_a_composite_key_warns(admin):
    [warning] = warnings_of(admin, "select sync.enable('public.list_members', conflict => 'lww')")
    assert "list_members" in warning.message_primary and "list_id, user_id" in warning.message_primary
    assert "WatermelonDB" in warning.message_primary and "surrogate" in warning.message_hint
    # Still enabled: /sync/v1/pull serves it.
    assert admin.execute("select served from sync.tables where relid = 'public.list_members'::regclass"
                         ).fetchone() == (True,)
    assert warnings_of(admin, "select sync.enable('public.todos', conflict => 'merge')") == []
    assert warnings_of(admin, "select sync.enable('public.list_members', served => false)") == []


@pytest.fixture
def empty_database(pg_server):
    name = create_database(pg_server, "template0")
    try:
        yield pg_server.dsn(name)
    finally:
        drop_database(pg_server, name)


def test_tuskbase_migrate_shows_the_warning(empty_database, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSKBASE_")}
    env.update({"TUSKBASE_DATABASE_URL": empty_database, "TUSKBASE_APP_DIR": str(TODO_APP),
                "TUSKBASE_DATA_DIR": str(tmp_path / "data"), "TUSKBASE_JWT_SECRET": TEST_JWT_SECRET})
    done = subprocess.run([sys.executable, "-m", "tuskbase.cli", "migrate"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    [warning] = [line for line in lines if "warning:" in line]
    assert "list_members" in warning and "WatermelonDB" in warning and "surrogate" in warning, warning
    # Shown beside the migration that raised it.
    assert "0002_sync.sql" in lines[lines.index(warning) - 1]


def test_the_surrogate_key_recipe_syncs_the_table_with_watermelondb(api, admin, running_feed, devices):
    alice, bob, carol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    shared = make_list(admin, alice, "shared")
    admin.execute("insert into public.list_members (list_id, user_id) values (%s, %s)", (shared, bob))
    admin.execute(SURROGATE_KEY)
    assert warnings_of(admin, "select sync.enable('public.list_members', conflict => 'lww')") == []
    settle(admin)

    devices.open("phone", api.user_token(alice), members=True)
    devices.open("laptop", api.user_token(bob), members=True)
    devices.sync("laptop")
    [membership] = devices.records("laptop", "list_members").values()
    assert (membership["list_id"], membership["user_id"]) == (shared, str(bob))

    # Alice adds Carol from her phone, offline first; the pair stays unique on the server.
    devices.sync("phone")
    assert len(devices.records("phone", "list_members")) == 1
    devices.call("create", device="phone", table="list_members",
                 fields={"list_id": shared, "user_id": str(carol), "role": "viewer", "added_at": 1_767_225_600_000})
    devices.sync("phone")
    assert admin.execute("select role from public.list_members where list_id = %s and user_id = %s",
                         (shared, carol)).fetchone() == ("viewer",)
    settle(admin)
    devices.sync("laptop")
    assert {r["user_id"] for r in devices.records("laptop", "list_members").values()} == {str(bob), str(carol)}
