"""Replaying the migrations gives exactly the committed `sql/schema.sql`: a migration that drifts from it, or a
schema edited by hand into the file, fails here."""

from __future__ import annotations

import difflib

import psycopg

from tests.conftest import create_database, drop_database
from tests.platform.schema_file import SCHEMA_FILE, dump, migrated_schema


def test_replayed_migrations_give_the_committed_schema(pg_server):
    name = create_database(pg_server, "template0")
    try:
        replayed = migrated_schema(pg_server.dsn(name))
    finally:
        drop_database(pg_server, name)
    committed = SCHEMA_FILE.read_text()
    diff = "".join(difflib.unified_diff(committed.splitlines(True), replayed.splitlines(True),
                                        "sql/schema.sql", "replayed migrations", n=1))
    assert replayed == committed, ("the migrations no longer give sql/schema.sql; if intended, run "
                                   f"`python -m tests.platform.schema_file --write`\n{diff[:4000]}")


def test_the_comparison_sees_a_drifted_schema(pg_server):
    name = create_database(pg_server, "template0")
    try:
        url = pg_server.dsn(name)
        migrated_schema(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("alter table auth.users add column drifted int")
        assert dump(url) != SCHEMA_FILE.read_text()
    finally:
        drop_database(pg_server, name)
