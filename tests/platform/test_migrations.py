"""Forward-only migrations: replayed in order, recorded with checksums, edits refused."""

from __future__ import annotations

import shutil

import psycopg
import pytest

from tests.conftest import TODO_APP, create_database, drop_database
from tuskbase import migrate

SCHEMA_SNAPSHOT = """
select n.nspname, c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
order by 1, 2, 4
"""


@pytest.fixture
def empty_database(pg_server):
    name = create_database(pg_server, "template0")
    try:
        yield pg_server.dsn(name)
    finally:
        drop_database(pg_server, name)


def snapshot(url):
    with psycopg.connect(url) as conn:
        return conn.execute(SCHEMA_SNAPSHOT).fetchall()


def test_replay_builds_the_template_schema_and_second_run_is_a_no_op(empty_database, database):
    lines = []
    applied = migrate.migrate(empty_database, TODO_APP, progress=lines.append)
    assert [m.name for m in applied] == [m.name for m in migrate.all_migrations(TODO_APP)]
    assert lines[0].startswith("[1/")
    assert snapshot(empty_database) == snapshot(database)

    before = snapshot(empty_database)
    assert migrate.migrate(empty_database, TODO_APP) == []
    assert snapshot(empty_database) == before


def test_edited_migration_is_refused(empty_database, tmp_path):
    app = tmp_path / "app"
    shutil.copytree(TODO_APP, app)
    migrate.migrate(empty_database, app)
    migration = app / "migrations" / "0001_todo_lists.sql"
    migration.write_text(migration.read_text() + "\n-- an edit\n")
    with pytest.raises(migrate.MigrationError, match=r"0001_todo_lists\.sql was edited after it was applied"):
        migrate.migrate(empty_database, app)


def test_failing_migration_is_rolled_back_and_named(empty_database, tmp_path):
    app = tmp_path / "app"
    (app / "migrations").mkdir(parents=True)
    (app / "migrations" / "0001_ok.sql").write_text("create table public.ok (id int);")
    (app / "migrations" / "0002_broken.sql").write_text("create table public.half (id int);\nselect nope;")
    with pytest.raises(migrate.MigrationError, match=r"0002_broken\.sql"):
        migrate.migrate(empty_database, app)
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("select to_regclass('public.ok')").fetchone()[0] == "ok"
        assert conn.execute("select to_regclass('public.half')").fetchone()[0] is None


def test_badly_named_migration_is_refused(tmp_path):
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "1_Init.sql").write_text("select 1;")
    with pytest.raises(migrate.MigrationError, match=r"NNNN_lowercase_name\.sql"):
        migrate.all_migrations(tmp_path)
