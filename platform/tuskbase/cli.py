"""The `tuskbase` command: dev, serve, worker, feed, migrate, policies, keys (and tuskbase.devtools' commands)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from tuskbase import db, migrate, observability, policies, serving
from tuskbase.config import Settings, SettingsError, load
from tuskbase.devtools import cli as devtools_cli
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


def stop_embedded(server: EmbeddedPostgres, quiet: bool = False) -> None:
    if server.stop():
        if not quiet:
            say("stopped the embedded Postgres")
    else:
        say("left the embedded Postgres running: another tuskbase command on this data dir still uses it")


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


def check_api_port_free(settings: Settings) -> None:
    """Refuse a taken API port in one line.

    granian binds with SO_REUSEPORT, so a second stack on a taken port would start anyway, share the port with
    the first, and take the first one's answer to its readiness probe for its own. This probe binds without
    SO_REUSEPORT, which any listener on the port makes fail (SO_REUSEADDR only lets a port in TIME_WAIT be reused).
    """
    try:
        found = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise CommandError(f"TUSKBASE_HOST {settings.host!r} cannot be resolved: {error.strerror}") from None
    family, kind, proto, _name, address = found[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            raise CommandError(
                f"port {settings.host}:{settings.port} is taken; set TUSKBASE_PORT to a free port"
            ) from None


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


@dataclass
class Child:
    """One process of the dev stack, restarted by `supervise` when it dies."""

    name: str
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_deaths: int = 0  # deaths in a row, each within RESTART_STABLE_AFTER of its start
    restart_at: float | None = None

    def start(self) -> None:
        # Its own process group: Ctrl-C in the terminal reaches only `dev`, which stops children in order,
        # and a dead child's own children (granian or Dramatiq workers) can be killed with it.
        self.process = subprocess.Popen(self.command, env=self.env, preexec_fn=os.setpgrp)
        self.started_at = time.monotonic()
        self.restart_at = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


# A child that ran this long before dying is restarted quickly again: its crash is not a crash loop.
RESTART_STABLE_AFTER = 60.0
RESTART_FIRST_DELAY = 0.5


def restart_delay(quick_deaths: int, max_delay: float) -> float:
    """Exponential backoff: 0.5 s, 1 s, 2 s, ... up to `max_delay`."""
    return min(max_delay, RESTART_FIRST_DELAY * 2 ** min(quick_deaths, 32))


def wait_ready(settings: Settings, children: list[Child]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    url = f"http://{settings.host}:{settings.port}/ready"
    while time.monotonic() < deadline:
        for child in children:
            if child.process is not None and child.process.poll() is not None:
                raise CommandError(f"{child.name} exited with status {child.process.returncode} while starting")
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


def supervise(children: list[Child], max_delay: float) -> int:
    """Restart every child that dies (with backoff) until Ctrl-C / SIGTERM; returns 0 then."""
    try:
        while True:
            now = time.monotonic()
            for child in children:
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        child.start()
                        say(f"{child.name} restarted (pid {child.process.pid})")
                elif not child.running:
                    _schedule_restart(child, now, max_delay)
            time.sleep(0.2)
    except StopRequested:
        return 0


def _schedule_restart(child: Child, now: float, max_delay: float) -> None:
    assert child.process is not None
    _kill_group(child.process)  # what the dead child started (its workers) must not outlive it
    if now - child.started_at >= RESTART_STABLE_AFTER:
        child.quick_deaths = 0
    delay = restart_delay(child.quick_deaths, max_delay)
    child.quick_deaths += 1
    say(f"{child.name} (pid {child.process.pid}) exited with status {child.process.returncode}; "
        f"restarting it in {delay:g}s")
    child.restart_at = now + delay


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def stop_children(children: list[Child]) -> None:
    running = [child.process for child in children if child.running]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in running:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
        _kill_group(process)


# Defaults of `tuskbase dev` that differ from a deployment's, each overridden by setting the variable. Email
# confirmations are off, as in Supabase's local stack (`enable_confirmations = false`): a fresh sign-up can
# sign in without fishing the code out of the console.
DEV_DEFAULTS = {"TUSKBASE_AUTH_EMAIL_AUTOCONFIRM": "true"}


def dev_settings(settings: Settings, environ: Mapping[str, str] = os.environ) -> Settings:
    """The settings `dev` itself uses (its banner), with DEV_DEFAULTS for the variables not set: read as its
    children read them (`child_environment`), so the banner cannot disagree with them."""
    if DEV_DEFAULTS.keys() <= environ.keys():
        return settings
    return load({**DEV_DEFAULTS, **environ})


def child_environment(settings: Settings) -> dict[str, str]:
    env = {**DEV_DEFAULTS, **os.environ}
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
    settings = dev_settings(settings)
    started = time.monotonic()
    stop_on_signals()
    check_api_port_free(settings)
    server = start_embedded(settings) if settings.embedded else None
    if server is None:
        say(f"using the database at {_redact(db.admin_url(settings))} (TUSKBASE_DATABASE_URL)")
    children: list[Child] = []
    try:
        check_database(settings)
        prepare_schema(settings)
        env = child_environment(settings)
        children = [Child("api", server_command(settings), env), Child("worker", worker_command(settings), env)]
        if feed := feed_command():
            children.append(Child("feed", feed, env))
        for child in children:
            child.start()
        wait_ready(settings, children)
        print_banner(settings, time.monotonic() - started)
        return supervise(children, settings.dev_restart_max_delay)
    except StopRequested:
        return 0  # Ctrl-C while starting is as normal a way to end `dev` as Ctrl-C once it runs
    finally:
        stop_children(children)
        if server is not None:
            stop_embedded(server)


def print_banner(settings: Settings, seconds: float) -> None:
    signer = Signer.from_settings(settings)
    print(
        f"\nTuskbase is ready in {seconds:.1f}s\n"
        f"  API URL:          {settings.api_url}\n"
        f"  REST:             {settings.api_url}/rest/v1\n"
        f"  Auth:             {settings.api_url}/auth/v1 (mails: "
        f"{'SMTP' if settings.smtp_url else 'console and table auth.mail_outbox'}; email confirmations "
        f"{'off' if settings.auth_email_autoconfirm else 'on'})\n"
        f"  Database:         {_redact(db.admin_url(settings))}\n"
        f"  anon key:         {signer.api_key('anon')}\n"
        f"  service_role key: {signer.api_key('service_role')}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )


def cmd_serve(settings: Settings, _args: argparse.Namespace) -> int:
    check_api_port_free(settings)
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
            stop_embedded(server, quiet=True)
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
            stop_embedded(server, quiet=True)
    return 0


def cmd_keys(settings: Settings, _args: argparse.Namespace) -> int:
    # Never generate a secret here: keys of a new secret would work against no running stack.
    signer = Signer(secret=existing_jwt_secret(settings), issuer=settings.jwt_issuer)
    print(f"anon key:         {signer.api_key('anon')}")
    print(f"service_role key: {signer.api_key('service_role')}")
    return 0


def existing_jwt_secret(settings: Settings) -> str:
    """The secret the stack signs with: the setting, else the one `dev` or `serve` generated into data_dir."""
    if settings.jwt_secret:
        return settings.jwt_secret
    data_dir = settings.data_dir.resolve()
    path = data_dir / "jwt_secret"
    if not path.is_file():
        missing = "no data dir" if not data_dir.is_dir() else "no jwt_secret in the data dir"
        raise CommandError(
            f"{missing} at {data_dir}: run `tuskbase keys` where `tuskbase dev` runs, or set TUSKBASE_DATA_DIR "
            "to the data dir of the running stack (or TUSKBASE_JWT_SECRET)"
        )
    return path.read_text().strip()


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "dev": cmd_dev,
    "serve": cmd_serve,
    "worker": cmd_worker,
    "feed": cmd_feed,
    "migrate": cmd_migrate,
    "policies": cmd_policies,
    "keys": cmd_keys,
}
COMMANDS.update(devtools_cli.COMMANDS)  # gen types, migration new, db reset|diff


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
    devtools_cli.add_commands(sub)
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
