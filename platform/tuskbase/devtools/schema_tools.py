"""`tuskbase migration new`, `tuskbase db reset` and `tuskbase db diff`: the schema workflow of a dev machine.

- `migration new NAME` writes `migrations/YYYYMMDDHHMMSS_NAME.sql` in the app folder (as `supabase migration
  new` does); `migrate` applies those after any `NNNN_` files.
- `db reset` drops the database and migrates it again from nothing, policies included. It only touches the
  embedded Postgres, or a TUSKBASE_DATABASE_URL on this machine (loopback) that `--local-url` declares a dev
  database, and asks first unless `--yes`.
- `db diff` migrates a scratch database on the same server, dumps both schemas with `pg_dump --schema-only`
  and prints the statements that differ: what the live database has that the migrations do not make, and
  the other way round. The scratch database is dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from tuskbase import migrate, policies

MIGRATION_NAME = re.compile(r"^[a-z0-9_]{1,80}$")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
MIGRATION_TEMPLATE = "-- {name}: written by `tuskbase migration new` on {when} UTC. Applied once, in order.\n"


class SchemaToolError(RuntimeError):
    """A one-line reason the command cannot go on."""


# --- migration new ------------------------------------------------------------------------------------------


def new_migration(app_dir: Path | None, name: str, now: dt.datetime | None = None) -> Path:
    if app_dir is None:
        raise SchemaToolError("no app folder: set TUSKBASE_APP_DIR to the folder holding migrations/")
    name = name.strip().lower().replace("-", "_").replace(" ", "_")
    if not MIGRATION_NAME.match(name):
        raise SchemaToolError(f"{name!r} is not a migration name: use lowercase letters, digits and _")
    now = now or dt.datetime.now(dt.UTC)
    folder = app_dir / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%d%H%M%S")
    path = folder / f"{stamp}_{name}.sql"
    if path.exists() or list(folder.glob(f"{stamp}_*.sql")):
        raise SchemaToolError(f"a migration stamped {stamp} exists already in {folder}: wait a second")
    path.write_text(MIGRATION_TEMPLATE.format(name=name, when=now.strftime("%Y-%m-%d %H:%M:%S")))
    return path


# --- db reset -------------------------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def database_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    if not name:
        raise SchemaToolError("the database URL names no database")
    return name


def check_resettable(url: str, embedded: bool, local_url: bool) -> None:
    """Refuse anything but a dev database: the embedded one, or a loopback URL declared with --local-url."""
    if embedded:
        return
    host = urlsplit(url).hostname or ""
    if not local_url:
        raise SchemaToolError("db reset only resets the embedded Postgres; TUSKBASE_DATABASE_URL is set "
                              "(add --local-url if it is a dev database on this machine)")
    if host not in LOOPBACK:
        raise SchemaToolError(f"db reset refuses the database on {host or 'a socket'}: only a database on "
                              "this machine (127.0.0.1, localhost, ::1) can be reset")


def recreate_database(url: str) -> None:
    """Drop the database of `url` (its connections and replication slots too) and create it empty."""
    name = database_name(url)
    if name in ("postgres", "template0", "template1"):
        raise SchemaToolError(f"db reset refuses to drop the {name} database")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        for (slot,) in conn.execute("select slot_name from pg_replication_slots where database = %s", (name,)):
            conn.execute("select pg_drop_replication_slot(%s)", (slot,))
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))


# --- db diff ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaDiff:
    only_live: list[str]  # in the database, made by no migration
    only_migrations: list[str]  # made by the migrations, missing from the database

    @property
    def empty(self) -> bool:
        return not self.only_live and not self.only_migrations

    def render(self) -> str:
        if self.empty:
            return "-- no schema differences: the database is what the migrations make\n"
        parts = []
        if self.only_live:
            parts.append("-- in the database, not made by the migrations (put these in a new migration):")
            parts.extend(s + "\n" for s in self.only_live)
        if self.only_migrations:
            parts.append("-- made by the migrations, missing from the database:")
            parts.extend(s + "\n" for s in self.only_migrations)
        return "\n".join(parts)


def pg_dump_program() -> str:
    from tuskbase.embedded import EmbeddedPostgresError, bin_dir

    try:
        bundled = bin_dir() / "pg_dump"
        if bundled.exists():
            return str(bundled)
    except EmbeddedPostgresError:
        pass
    found = shutil.which("pg_dump")
    if found is None:
        raise SchemaToolError("pg_dump is needed for db diff and was not found")
    return found


def dump_schema(url: str) -> str:
    done = subprocess.run([pg_dump_program(), "--schema-only", "--no-owner", "--no-privileges", "--dbname", url],
                          capture_output=True, text=True, env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"
        raise SchemaToolError(f"pg_dump failed: {reason}")
    return done.stdout


def statements(dump: str) -> list[str]:
    """The dump's DDL statements, one string each, without comments, session SETs or psql meta-commands."""
    lines = [line for line in dump.splitlines()
             if line.strip() and not line.startswith("--") and not line.startswith("\\")]
    found, current = [], []
    for line in lines:
        current.append(line.rstrip())
        if line.rstrip().endswith(";") and _balanced("\n".join(current)):
            text = "\n".join(current)
            current = []
            if re.match(r"^(SET |SELECT pg_catalog\.set_config)", text):
                continue
            found.append(text)
    if current:
        found.append("\n".join(current))
    return found


def _balanced(text: str) -> bool:
    """False inside a dollar-quoted body (a function's), where a line may end in ';' mid-statement."""
    return len(re.findall(r"\$[A-Za-z_]*\$", text)) % 2 == 0


def compare(live: str, migrated: str) -> SchemaDiff:
    live_statements, migrated_statements = statements(live), statements(migrated)
    live_set, migrated_set = set(live_statements), set(migrated_statements)
    return SchemaDiff([s for s in live_statements if s not in migrated_set],
                      [s for s in migrated_statements if s not in live_set])


def diff(url: str, app_dir: Path | None, progress: Callable[[str], None] = lambda _line: None) -> SchemaDiff:
    scratch = f"tuskbase_diff_{os.getpid()}"
    scratch_url = with_database(url, scratch)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(scratch)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(scratch)))
    try:
        progress(f"applying the migrations to a scratch database ({scratch})")
        migrate.migrate(scratch_url, app_dir)
        policies.apply(scratch_url, app_dir)
        progress("comparing pg_dump --schema-only of both")
        return compare(dump_schema(url), dump_schema(scratch_url))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(scratch)))
