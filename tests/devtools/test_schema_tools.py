"""`tuskbase migration new`, `tuskbase db reset` and `tuskbase db diff`, run as a user runs them."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.conftest import TODO_APP, free_port
from tests.devtools.conftest import run_tuskbase
from tuskbase import migrate
from tuskbase.devtools import schema_tools


@pytest.fixture
def app_copy(tmp_path) -> Path:
    target = tmp_path / "app"
    shutil.copytree(TODO_APP, target)
    return target


def test_migration_new_writes_a_timestamped_file_that_migrate_applies_last(cli_env, app_copy):
    cli_env["TUSKBASE_APP_DIR"] = str(app_copy)
    done = run_tuskbase("migration", "new", "add_tags", env=cli_env)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.parent == app_copy / "migrations"
    assert re.fullmatch(r"\d{14}_add_tags\.sql", path.name)
    assert path.read_text().startswith("-- add_tags:")
    names = [m.name for m in migrate.all_migrations(app_copy)]
    assert names[-1] == path.name and names[-3:-1] == ["0001_todo_lists.sql", "0002_sync.sql"]
    # A numbered file written later still sorts before every timestamped one.
    (app_copy / "migrations" / "0003_more.sql").write_text("select 1;")
    assert [m.name for m in migrate.all_migrations(app_copy)][-2:] == ["0003_more.sql", path.name]


def test_migration_new_refuses_bad_names_and_a_missing_app_folder(cli_env, app_copy):
    cli_env["TUSKBASE_APP_DIR"] = str(app_copy)
    done = run_tuskbase("migration", "new", "drop; table", env=cli_env)
    assert done.returncode == 1 and "is not a migration name" in done.stderr
    assert sorted(p.name for p in (app_copy / "migrations").iterdir()) == ["0001_todo_lists.sql", "0002_sync.sql"]
    del cli_env["TUSKBASE_APP_DIR"]
    done = run_tuskbase("migration", "new", "fine", env=cli_env)
    assert done.returncode == 1 and "TUSKBASE_APP_DIR" in done.stderr


def _junk(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table public.junk (id int); insert into public.junk values (1)")
        conn.execute("insert into public.lists (owner_id, title) values (gen_random_uuid(), 'kept?')")


def _state(url: str) -> tuple[bool, int, int, int]:
    with psycopg.connect(url) as conn:
        junk = conn.execute("select to_regclass('public.junk') is not null").fetchone()[0]
        lists = conn.execute("select count(*) from public.lists").fetchone()[0]
        migrations = conn.execute("select count(*) from tuskbase.schema_migrations").fetchone()[0]
        todo_policies = conn.execute("select count(*) from pg_policies where tablename = 'todos'").fetchone()[0]
    return junk, lists, migrations, todo_policies


def test_db_reset_refuses_a_database_url_unless_declared_local(cli_env, settings):
    _junk(settings.database_url)
    done = run_tuskbase("db", "reset", "--yes", env=cli_env)
    assert done.returncode == 1 and "only resets the embedded Postgres" in done.stderr
    remote = dict(cli_env, TUSKBASE_DATABASE_URL="postgresql://postgres@db.example.com:5432/app")
    done = run_tuskbase("db", "reset", "--yes", "--local-url", env=remote)
    assert done.returncode == 1 and "refuses the database on db.example.com" in done.stderr
    assert _state(settings.database_url)[:2] == (True, 1)


def test_db_reset_asks_first_and_a_no_changes_nothing(cli_env, settings):
    _junk(settings.database_url)
    done = run_tuskbase("db", "reset", "--local-url", env=cli_env, input="n\n")
    assert done.returncode == 1 and "nothing changed" in done.stderr
    assert _state(settings.database_url)[:2] == (True, 1)


def test_db_reset_drops_everything_and_migrates_again(cli_env, settings):
    _junk(settings.database_url)
    before = _state(settings.database_url)
    done = run_tuskbase("db", "reset", "--local-url", env=cli_env, input="yes\n")
    assert done.returncode == 0, done.stderr
    junk, lists, migrations, todo_policies = _state(settings.database_url)
    assert (junk, lists) == (False, 0)
    assert migrations == before[2] and todo_policies == before[3] > 0


def test_db_diff_is_empty_on_a_migrated_database_and_names_each_drift(cli_env, settings):
    done = run_tuskbase("db", "diff", "--exit-code", env=cli_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no schema differences" in done.stdout
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("create table public.extra (id int primary key, label text)")
        conn.execute("drop index public.todos_list_id")
    done = run_tuskbase("db", "diff", "--exit-code", env=cli_env)
    assert done.returncode == 1, done.stderr
    live, _, migrated = done.stdout.partition("-- made by the migrations, missing from the database:")
    assert "-- in the database, not made by the migrations" in live
    assert "CREATE TABLE public.extra (" in live and "label text" in live
    assert "CREATE INDEX todos_list_id ON public.todos USING btree (list_id);" in migrated
    with psycopg.connect(settings.database_url) as conn:  # the scratch database is gone
        assert conn.execute("select count(*) from pg_database where datname like 'tuskbase_diff_%'").fetchone()[0] == 0


def test_statements_keep_function_bodies_whole():
    dump = ("SET x = 1;\n\\restrict abc\n-- comment\nCREATE FUNCTION f() RETURNS int\n    LANGUAGE plpgsql\n"
            "    AS $$\nbegin\n  return 1;\nend\n$$;\nCREATE TABLE t (id int);\n")
    assert schema_tools.statements(dump) == [
        "CREATE FUNCTION f() RETURNS int\n    LANGUAGE plpgsql\n    AS $$\nbegin\n  return 1;\nend\n$$;",
        "CREATE TABLE t (id int);"]


def test_reset_and_diff_on_the_embedded_default(tmp_path):
    """No TUSKBASE_DATABASE_URL: the commands start the embedded Postgres, and stop it again."""
    data = Path(tempfile.mkdtemp(prefix="tuskbase-devtools-"))
    os.chmod(data, 0o755)  # run as root, the server's system user must be able to enter it
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSKBASE_")}
    env.update(TUSKBASE_DATA_DIR=str(data), TUSKBASE_DB_PORT=str(free_port()), TUSKBASE_APP_DIR=str(TODO_APP))
    try:
        done = run_tuskbase("db", "reset", "--yes", env=env)
        assert done.returncode == 0, done.stderr
        assert "was reset" in done.stderr
        done = run_tuskbase("db", "diff", "--exit-code", env=env)
        assert done.returncode == 0 and "no schema differences" in done.stdout, done.stdout + done.stderr
        assert not (data / "pgdata" / "postmaster.pid").exists()  # stopped: these commands started it
        done = run_tuskbase("gen", "types", "typescript", env=env)  # to stdout: the server's lines go to stderr
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("export type Json =") and "todos: {" in done.stdout
        assert "starting the embedded Postgres" in done.stderr
    finally:
        shutil.rmtree(data, ignore_errors=True)
