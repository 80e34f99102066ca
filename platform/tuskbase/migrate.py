"""Forward-only SQL migrations: `NNNN_name.sql` files applied in order, one transaction each, with checksums.

Two sources are migrated: the platform's own `sql/` folder and, when configured, the app's `migrations/`.
Each applied file is recorded with its SHA-256; a file edited after it was applied is refused, because
re-running it would silently diverge the schema from what every other deployment has.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg


def platform_folder(name: str) -> Path:
    """The platform's `sql/` or `policies/`, wherever tuskbase runs from.

    Installed from a wheel (or `pip install .`), they are package data: `tuskbase/_sql`, `tuskbase/_policies`
    (setup.py maps the top-level folders there). From the source tree (an editable install, the tests), the package
    holds no such folder and they are the repository's own, two levels above the package.
    """
    package = Path(__file__).resolve().parent
    shipped = package / f"_{name}"
    source_tree = package.parents[1]
    if not shipped.is_dir() and (source_tree / "pyproject.toml").is_file():
        return source_tree / name
    return shipped


PLATFORM_SQL = platform_folder("sql")
# NNNN_name.sql, or YYYYMMDDHHMMSS_name.sql as `tuskbase migration new` (and the Supabase CLI) writes them.
NAME_PATTERN = re.compile(r"^(?:\d{4}|\d{14})_[a-z0-9_]+\.sql$")
# The generated dump of the schema the migrations give (tests/platform/schema_file.py): read, never applied.
SCHEMA_SNAPSHOT = "schema.sql"
# One key for every migrating process: replicas starting together migrate one after the other.
LOCK_KEY = 0x7475736B  # "tusk"

BOOTSTRAP = """
create schema if not exists tuskbase;
create table if not exists tuskbase.schema_migrations (
  source text not null,
  name text not null,
  checksum text not null,
  applied_at timestamptz not null default now(),
  primary key (source, name)
);
"""
APPLIED = "select name, checksum from tuskbase.schema_migrations where source = %s"
RECORD = "insert into tuskbase.schema_migrations (source, name, checksum) values (%s, %s, %s)"


class MigrationError(RuntimeError):
    """A migration cannot be applied; the message names the file."""


@dataclass(frozen=True)
class Migration:
    source: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(source: str, folder: Path) -> list[Migration]:
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.sql"):
        if path.name == SCHEMA_SNAPSHOT:
            continue
        if not NAME_PATTERN.match(path.name):
            raise MigrationError(f"{path}: migration files are named NNNN_lowercase_name.sql "
                                 "(or YYYYMMDDHHMMSS_lowercase_name.sql)")
        found.append(Migration(source, path))
    # By number, then name: every NNNN file comes before every timestamped one.
    return sorted(found, key=lambda m: (int(m.name.split("_", 1)[0]), m.name))


def sources(app_dir: Path | None) -> list[tuple[str, Path]]:
    """The folders migrated, platform first: app migrations may use platform schemas and roles."""
    if not PLATFORM_SQL.is_dir():
        # Migrating without the platform's schema would only fail later, and less clearly.
        raise MigrationError(f"{PLATFORM_SQL}: the platform migrations are missing from this installation of tuskbase")
    folders = [("platform", PLATFORM_SQL)]
    if app_dir is not None:
        folders.append(("app", app_dir / "migrations"))
    return folders


def all_migrations(app_dir: Path | None) -> list[Migration]:
    return [m for source, folder in sources(app_dir) for m in discover(source, folder)]


def pending(conn: psycopg.Connection, migrations: Iterable[Migration]) -> list[Migration]:
    """Migrations not yet applied; raises if an applied file was edited since."""
    conn.execute(BOOTSTRAP)
    applied: dict[tuple[str, str], str] = {}
    for source in {m.source for m in migrations}:
        for name, checksum in conn.execute(APPLIED, (source,)):
            applied[(source, name)] = checksum
    todo = []
    for migration in migrations:
        recorded = applied.get((migration.source, migration.name))
        if recorded is None:
            todo.append(migration)
        elif recorded != migration.checksum:
            raise MigrationError(
                f"{migration.path} was edited after it was applied (checksum differs): "
                "migrations are forward-only, add a new file instead"
            )
    return todo


def migrate(
    url: str,
    app_dir: Path | None = None,
    progress: Callable[[str], None] = lambda _line: None,
) -> list[Migration]:
    """Apply every pending migration, each in its own transaction. Returns those applied."""
    migrations = all_migrations(app_dir)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.add_notice_handler(lambda notice: _show_warning(notice, progress))
        conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            todo = pending(conn, migrations)
            for index, migration in enumerate(todo, 1):
                progress(f"[{index}/{len(todo)}] {migration.source}: {migration.name}")
                _apply(conn, migration)
            _install_queue(conn)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
    if not todo:
        progress(f"schema is current ({len(migrations)} migrations applied)")
    return todo


def _show_warning(notice: psycopg.errors.Diagnostic, progress: Callable[[str], None]) -> None:
    """A WARNING a migration raised (sync.enable on a table WatermelonDB cannot sync), shown with the progress
    lines. NOTICEs (`create ... if not exists` skipping) are routine and stay quiet."""
    if (notice.severity_nonlocalized or notice.severity) != "WARNING":
        return
    line = f"warning: {notice.message_primary}"
    if notice.message_hint:
        line += f" ({notice.message_hint})"
    progress(line)


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    try:
        with conn.transaction():
            conn.execute(migration.sql.encode())
            conn.execute(RECORD, (migration.source, migration.name, migration.checksum))
    except psycopg.Error as error:
        raise MigrationError(f"{migration.path}: {error.diag.message_primary or error}") from None


def _install_queue(conn: psycopg.Connection) -> None:
    """The Dramatiq Postgres broker's tables, from the library itself so that they match its version."""
    from dramatiq_postgres.schema import init

    with conn.transaction(), conn.cursor() as cursor:
        init(cursor)


def is_current(conn: psycopg.Connection, app_dir: Path | None) -> bool:
    return not pending(conn, all_migrations(app_dir))
