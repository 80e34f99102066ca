"""The `tuskbase` command: dev, serve, worker, feed, migrate, policies, keys."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

from tuskbase import db, migrate, observability, policies, serving
from tuskbase.config import Settings, SettingsError, load
from tuskbase.embedded import EmbeddedPostgres, EmbeddedPostgresError
from tuskbase.tokens import Signer

READY_TIMEOUT = 60.0


class CommandError(RuntimeError):
    """A one-line reason the command cannot go on."""


def say(line: str) -> None:
    print(f"tuskbase: {line}", flush=True)


# --- the database -------------------------------------------------------------------------------------


def start_embedded(settings: Settings) -> EmbeddedPostgres:
    server = EmbeddedPostgres(settings.data_dir, settings.db_port)
    say(f"starting the embedded Postgres on 127.0.0.1:{settings.db_port} (data in {server.pgdata})")
    server.start(log=say)
    with psycopg.connect(server.url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (db.DATABASE_NAME,)).fetchone()
        if not exists:
            conn.execute(f'create database "{db.DATABASE_NAME}"')
    return server


def check_database(settings: Settings) -> None:
    """Fail with one line when the database cannot be reached; warn when logical decoding is off."""
    url = db.admin_url(settings)
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            wal_level = conn.execute("show wal_level").fetchone()[0]
    except psycopg.OperationalError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "no answer"
        raise CommandError(f"cannot reach the database at {_redact(url)}: {reason}") from None
    if wal_level != "logical":
        say(f"warning: wal_level is {wal_level!r} on {_redact(url)}; sync needs wal_level=logical "
            "(ALTER SYSTEM SET wal_level = logical; then restart Postgres)")


def prepare_schema(settings: Settings) -> None:
    url = db.admin_url(settings)
    migrate.migrate(url, settings.app_dir, progress=say)
    _set_authenticator_password(settings, url)
    policies.apply(url, settings.app_dir, progress=say)


def _set_authenticator_password(settings: Settings, url: str) -> None:
    if settings.embedded:
        return  # the embedded server trusts local connections
    from tuskbase.tokens import authenticator_password

    with psycopg.connect(url, autocommit=True) as conn:
        password = authenticator_password(settings)
        conn.execute(psycopg.sql.SQL("alter role authenticator password {}").format(psycopg.sql.Literal(password)))


def _redact(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    return f"{parts.scheme}://{parts.username or ''}@{host}{parts.path}"


# --- processes ----------------------------------------------------------------------------------------


def server_command(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "tuskbase.app:asgi_factory",
        "--host", settings.host, "--port", str(settings.port), "--workers", str(settings.workers),
        "--log-level", "warning", *serving.granian_options(settings),
    ]


def worker_command(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "dramatiq", "tuskbase_workers",
        "--processes", str(settings.worker_processes), "--threads", str(settings.worker_threads),
        "--skip-logging",  # tuskbase_workers configures logging as the API does (observability.configure_logging)
    ]


def feed_command() -> list[str] | None:
    try:
        import tuskbase.sync.feed  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "tuskbase.cli", "feed"]


def wait_ready(settings: Settings, children: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    url = f"http://{settings.host}:{settings.port}/ready"
    while time.monotonic() < deadline:
        for child in children:
            if child.poll() is not None:
                raise CommandError(f"{' '.join(child.args[2:4])} exited with status {child.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise CommandError(f"the API did not answer {url} within {READY_TIMEOUT:.0f}s")


class StopRequested(Exception):
    """Ctrl-C or SIGTERM arrived; `finally` blocks stop what was started."""


def stop_on_signals() -> None:
    """From now on, SIGINT and SIGTERM stop the command cleanly, whatever it is doing.

    Set explicitly because a process started in the background by a shell inherits SIGINT ignored.
    """

    def request_stop(_signum: int, _frame: object) -> None:
        # Further signals must not interrupt the cleanup this one starts (it has its own time limits).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise StopRequested

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def supervise(children: list[subprocess.Popen[bytes]]) -> int:
    """Block until Ctrl-C / SIGTERM (0) or until a child dies (1)."""
    try:
        while True:
            for child in children:
                if child.poll() is not None:
                    say(f"{' '.join(map(str, child.args[:4]))} exited with status {child.returncode}; stopping")
                    return 1
            time.sleep(0.2)
    except StopRequested:
        return 0


def stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


def child_environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["TUSKBASE_DATA_DIR"] = str(settings.data_dir.resolve())
    if settings.app_dir is not None:
        env["TUSKBASE_APP_DIR"] = str(settings.app_dir.resolve())
    if settings.embedded:
        # Children must reach the same embedded server, whatever their working directory.
        env["TUSKBASE_DB_PORT"] = str(settings.db_port)
    observability.prepare_multiprocess(settings, env)
    return env


# --- commands -----------------------------------------------------------------------------------------


def cmd_dev(settings: Settings, _args: argparse.Namespace) -> int:
    started = time.monotonic()
    stop_on_signals()
    server = start_embedded(settings) if settings.embedded else None
    if server is None:
        say(f"using the database at {_redact(db.admin_url(settings))} (TUSKBASE_DATABASE_URL)")
    children: list[subprocess.Popen[bytes]] = []
    try:
        check_database(settings)
        prepare_schema(settings)
        env = child_environment(settings)
        commands = [server_command(settings), worker_command(settings)]
        if feed := feed_command():
            commands.append(feed)
        # Children ignore Ctrl-C from the terminal: this process stops them in order instead.
        children = [subprocess.Popen(c, env=env, preexec_fn=os.setpgrp) for c in commands]
        wait_ready(settings, children)
        print_banner(settings, time.monotonic() - started)
        return supervise(children)
    except StopRequested:
        return 0  # Ctrl-C while starting is as normal a way to end `dev` as Ctrl-C once it runs
    finally:
        stop_children(children)
        if server is not None:
            say("stopping the embedded Postgres")
            server.stop()


def print_banner(settings: Settings, seconds: float) -> None:
    signer = Signer.from_settings(settings)
    print(
        f"\nTuskbase is ready in {seconds:.1f}s\n"
        f"  API URL:          {settings.api_url}\n"
        f"  REST:             {settings.api_url}/rest/v1\n"
        f"  Auth:             {settings.api_url}/auth/v1 (mails: "
        f"{'SMTP' if settings.smtp_url else 'console and table auth.mail_outbox'})\n"
        f"  Database:         {_redact(db.admin_url(settings))}\n"
        f"  anon key:         {signer.api_key('anon')}\n"
        f"  service_role key: {signer.api_key('service_role')}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )


def cmd_serve(settings: Settings, _args: argparse.Namespace) -> int:
    check_database(settings)
    env = dict(os.environ)
    observability.prepare_multiprocess(settings, env)
    os.execve(sys.executable, server_command(settings), env)


def cmd_worker(settings: Settings, _args: argparse.Namespace) -> int:
    check_database(settings)
    os.execv(sys.executable, worker_command(settings))


def cmd_feed(settings: Settings, _args: argparse.Namespace) -> int:
    try:
        from tuskbase.sync import feed
    except ImportError:
        raise CommandError("the sync feed consumer is not part of this build") from None
    return feed.main(settings)


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    server = start_embedded(settings) if settings.embedded else None
    try:
        check_database(settings)
        prepare_schema(settings)
    finally:
        if server is not None:
            server.stop()
    return 0


def cmd_policies(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "lint":
        from tuskbase.policy_lint import lint_main

        return lint_main(settings, args)
    server = start_embedded(settings) if settings.embedded else None
    try:
        check_database(settings)
        policies.apply(db.admin_url(settings), settings.app_dir, progress=say, dry_run=args.dry_run,
                       paths=args.paths or None)
    finally:
        if server is not None:
            server.stop()
    return 0


def cmd_keys(settings: Settings, _args: argparse.Namespace) -> int:
    signer = Signer.from_settings(settings)
    print(f"anon key:         {signer.api_key('anon')}")
    print(f"service_role key: {signer.api_key('service_role')}")
    return 0


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "dev": cmd_dev,
    "serve": cmd_serve,
    "worker": cmd_worker,
    "feed": cmd_feed,
    "migrate": cmd_migrate,
    "policies": cmd_policies,
    "keys": cmd_keys,
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="tuskbase", description="Self-hostable offline-first mobile backend")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="run everything on the embedded Postgres (or TUSKBASE_DATABASE_URL)")
    sub.add_parser("serve", help="run the API server")
    sub.add_parser("worker", help="run the Dramatiq workers")
    sub.add_parser("feed", help="run the sync change-feed consumer")
    sub.add_parser("migrate", help="apply pending migrations and policies")
    pol = sub.add_parser("policies", help="lint or apply the RLS policy files")
    pol.add_argument("action", choices=["lint", "apply"])
    pol.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    pol.add_argument("paths", nargs="*", type=Path, help="policy files or folders (default: all)")
    sub.add_parser("keys", help="print the anon and service-role keys")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load()
        from tuskbase.observability import configure_logging

        configure_logging(settings)
        return COMMANDS[args.command](settings, args)
    except (SettingsError, CommandError, EmbeddedPostgresError, migrate.MigrationError,
            policies.PolicyError) as error:
        print(f"tuskbase: error: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, StopRequested):
        return 130


if __name__ == "__main__":
    sys.exit(main())
