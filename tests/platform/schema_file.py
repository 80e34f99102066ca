"""`sql/schema.sql`: the platform's whole schema as `pg_dump --schema-only` prints it after every migration in
`sql/`, committed so a reviewer reads the current schema in one file (as procrastinate does). A test replays
the migrations and compares; after adding a migration, rewrite the file:

    .venv/bin/python -m tests.platform.schema_file --write
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

from tuskbase import embedded, migrate
from tuskbase.devtools.schema_tools import pg_dump_program

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "sql" / "schema.sql"
HEADER = "-- The schema after every migration in sql/. Generated: python -m tests.platform.schema_file --write\n"

# Lines that differ from one dump to the next without the schema changing: the server and pg_dump versions,
# and the random key of `\restrict`, which pg_dump 17.6+ prints to fence the dump from psql meta-commands.
_UNSTABLE = re.compile(r"^(-- Dumped (from database|by pg_dump) version .*|\\(un)?restrict .*)$")


def dump(url: str) -> str:
    """The schema of the database at `url`, normalised so that two dumps of the same schema are equal."""
    # Owners and privileges stay in (unlike `db diff`): grants are part of what RLS rests on.
    out = subprocess.run([pg_dump_program(), "--schema-only", url], check=True, capture_output=True,
                         text=True).stdout
    lines = [line for line in out.splitlines() if not _UNSTABLE.match(line)]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
    return HEADER + text


def migrated_schema(url: str) -> str:
    migrate.migrate(url, None)
    return dump(url)


def _with_scratch_server() -> str:
    with tempfile.TemporaryDirectory(prefix="tuskbase-schema-") as folder:
        Path(folder).chmod(0o755)
        server = embedded.EmbeddedPostgres(Path(folder), _free_port())
        server.start(log=lambda _line: None)
        try:
            with psycopg.connect(server.url, autocommit=True) as conn:
                conn.execute("create database schema_file")
            return migrated_schema(server.dsn("schema_file"))
        finally:
            server.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    schema = _with_scratch_server()
    if "--write" in sys.argv[1:]:
        SCHEMA_FILE.write_text(schema)
        print(f"wrote {SCHEMA_FILE.relative_to(ROOT)} ({len(schema.splitlines())} lines)")
    else:
        sys.stdout.write(schema)
