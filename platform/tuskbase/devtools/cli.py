"""The developer commands `tuskbase` gains from this package: gen types, migration new, db reset, db diff.

`tuskbase.cli` registers them with `add_commands(subparsers)` and dispatches through `COMMANDS`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from tuskbase.config import Settings
from tuskbase.devtools import catalog, schema_tools, typegen
from tuskbase.devtools.schema_tools import SchemaToolError


def say(line: str) -> None:
    print(f"tuskbase: {line}", file=sys.stderr, flush=True)  # stderr: `gen types > file` keeps stdout clean


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The admin URL of the configured database; the embedded one is started if needed. The command holds a
    lease on it meanwhile (`EmbeddedPostgres.start`), so a running `tuskbase dev` keeps its server, and a dev
    stack stopped meanwhile does not take the server away from under this command."""
    from tuskbase import db
    from tuskbase.embedded import EmbeddedPostgres

    server = None
    if settings.embedded:
        server = EmbeddedPostgres(settings.data_dir, settings.db_port)
        if not server.is_running():
            say(f"starting the embedded Postgres on 127.0.0.1:{settings.db_port} (data in {server.pgdata})")
        server.start(log=say)  # its lines go to stderr too: `gen types` output stays clean
        _create_database(server.url, db.DATABASE_NAME)
    try:
        from tuskbase.cli import check_database  # one line, not a traceback, for a database it cannot reach

        with contextlib.redirect_stdout(sys.stderr):  # its warning must not land in `gen types > file`
            check_database(settings)
        yield db.admin_url(settings)
    finally:
        if server is not None:
            server.stop()


def _create_database(url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))


def cmd_gen(settings: Settings, args: argparse.Namespace) -> int:
    schemas = args.schema or list(settings.rest_schema_list)
    with database(settings) as url:
        try:
            described = catalog.load(url, schemas)
        except catalog.UnknownSchema as error:
            raise SchemaToolError(str(error)) from None
    text = typegen.GENERATORS[args.language](described)
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as error:
            raise SchemaToolError(f"cannot write {args.output}: {error.strerror}") from None
        say(f"wrote {args.language} types of {', '.join(schemas)} to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_migration(settings: Settings, args: argparse.Namespace) -> int:
    path = schema_tools.new_migration(settings.app_dir, args.name)
    print(path)
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "diff":
        with database(settings) as url:
            result = schema_tools.diff(url, settings.app_dir, progress=say)
        sys.stdout.write(result.render())
        return 1 if args.exit_code and not result.empty else 0
    from tuskbase import db

    url = db.admin_url(settings)
    schema_tools.check_resettable(url, settings.embedded, args.local_url)
    name = schema_tools.database_name(url)
    if not args.yes and not _confirm(f"drop the database {name!r} and everything in it, then migrate it again?"):
        say("nothing changed")
        return 1
    with database(settings) as url:
        say(f"dropping and recreating the database {name!r}")
        schema_tools.recreate_database(url)
        from tuskbase.cli import prepare_schema

        prepare_schema(settings)
    say(f"the database {name!r} was reset: migrations and policies applied")
    return 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        say(f"{question} [y/N] (not a terminal: pass --yes)")
        answer = sys.stdin.readline()
    else:
        answer = input(f"tuskbase: {question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def guarded(command: Callable[[Settings, argparse.Namespace], int]) -> Callable[[Settings, argparse.Namespace], int]:
    def run(settings: Settings, args: argparse.Namespace) -> int:
        try:
            return command(settings, args)
        except SchemaToolError as error:
            print(f"tuskbase: error: {error}", file=sys.stderr)
            return 1

    return run


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "gen": guarded(cmd_gen),
    "migration": guarded(cmd_migration),
    "db": guarded(cmd_db),
}


def add_commands(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("gen", help="generate client types of the exposed schemas")
    gen_sub = gen.add_subparsers(dest="gen_what", required=True)
    types = gen_sub.add_parser("types", help="TypeScript (supabase-js), Swift or Kotlin types")
    types.add_argument("language", choices=sorted(typegen.GENERATORS))
    types.add_argument("--schema", action="append", help="schema to describe (repeatable; default REST_SCHEMAS)")
    types.add_argument("--output", "-o", help="write to this file instead of stdout")
    migration = sub.add_parser("migration", help="create a migration file")
    migration_sub = migration.add_subparsers(dest="migration_action", required=True)
    new = migration_sub.add_parser("new", help="write migrations/YYYYMMDDHHMMSS_NAME.sql in the app folder")
    new.add_argument("name")
    database_parser = sub.add_parser("db", help="reset the dev database, or diff it against the migrations")
    database_parser.add_argument("action", choices=["reset", "diff"])
    database_parser.add_argument("--yes", "-y", action="store_true", help="reset without asking")
    database_parser.add_argument("--local-url", action="store_true",
                                 help="TUSKBASE_DATABASE_URL is a dev database on this machine: reset may drop it")
    database_parser.add_argument("--exit-code", action="store_true", help="diff: exit 1 when the schemas differ")
