"""The processes of the stack, started with exactly the settings the compose file and the chart give them.

No Docker engine and no cluster run here, so the containers' processes run as local processes: each gets
the environment its container would get (docker-compose `config` for the compose stack, the rendered
ConfigMap + Secret + env for the chart), with only the places that exist inside a container moved to local
ones: the database host (the session's embedded Postgres, in a fresh empty database), the data folder, the app
folder, and the API's port. Then `migrate` must migrate that database, `serve` must pass the very
healthcheck / readiness probe the stack declares, and a second `feed` must wait as a standby and take over
when the leader stops.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import yaml

from tests.conftest import TODO_APP, drop_database, free_port
from tests.packaging.support import FILLED_SECRETS, ROOT

READY_WITHIN = 45.0


def compose_environments(tmp_path: Path) -> dict[str, dict[str, str]]:
    from tests.packaging.test_compose import compose_config, project

    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("Debian's docker-compose is not installed (tests/packaging/install-tools.sh needs root and apt)")
    (tmp_path / "compose").mkdir()
    result = compose_config(binary, project(tmp_path / "compose", **FILLED_SECRETS))
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    return {name: {k: str(v) for k, v in services[name]["environment"].items()}
            for name in ("migrate", "api", "worker", "feed")}


def chart_environments() -> dict[str, dict[str, str]]:
    from tests.packaging.test_chart import SECRETS, environment_of, one, render

    objects = render({"secrets": SECRETS, "app": {"dir": "/srv/app"}})
    environments = {name: environment_of(objects, one(objects, "Deployment", f"tb-tuskbase-{name}"))
                    for name in ("api", "worker", "feed")}
    environments["migrate"] = environment_of(objects, one(objects, "Job", "tb-tuskbase-migrate"))
    return environments


def localize(environment: dict[str, str], database: str, data_dir: Path) -> dict[str, str]:
    """Move what lives inside the container to its local stand-in; keep every other setting as given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSKBASE_")}
    env.update(environment)
    given = urlsplit(environment["TUSKBASE_DATABASE_URL"])
    local = urlsplit(database)
    # Same role and password as the stack's URL (the API's has none); the embedded server's address and the
    # test's database.
    password = f":{given.password}" if given.password is not None else ""
    netloc = f"{given.username}{password}@{local.hostname}:{local.port}"
    env["TUSKBASE_DATABASE_URL"] = urlunsplit((given.scheme, netloc, local.path, "", ""))
    env["TUSKBASE_DATA_DIR"] = str(data_dir)
    if "TUSKBASE_APP_DIR" in environment:
        env["TUSKBASE_APP_DIR"] = str(TODO_APP)
    if "TUSKBASE_PORT" in environment:
        env["TUSKBASE_HOST"], env["TUSKBASE_PORT"] = "127.0.0.1", str(free_port())
    return env


def tuskbase(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tuskbase.cli", *args], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[str]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def output(process: subprocess.Popen[str]) -> str:
    stop(process)
    return process.stdout.read() if process.stdout else ""


@pytest.fixture
def empty_database(pg_server):
    """A new, empty database: the stack's `migrate` has everything to do."""
    name = f"stack_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield pg_server.dsn(name)
    finally:
        drop_database(pg_server, name)


def run_migrate(environments, database: str, tmp_path: Path) -> None:
    env = localize(environments["migrate"], database, tmp_path / "migrate")
    done = subprocess.run([sys.executable, "-m", "tuskbase.cli", "migrate"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    with psycopg.connect(database) as conn:
        sources = {s for (s,) in conn.execute("select distinct source from tuskbase.schema_migrations")}
    assert sources == {"platform", "app"}


def wait_until(check, what: str, process: subprocess.Popen[str], within: float = READY_WITHIN) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode} before {what}:\n{output(process)}"
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"not {what} within {within:.0f}s:\n{output(process)}")


def test_the_compose_stack_migrates_and_its_api_passes_its_healthcheck(empty_database, tmp_path):
    environments = compose_environments(tmp_path)
    run_migrate(environments, empty_database, tmp_path)
    env = localize(environments["api"], empty_database, tmp_path / "api")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    healthcheck = compose["services"]["api"]["healthcheck"]["test"]
    assert healthcheck[:2] == ["CMD", "python"]
    probe = [sys.executable, *healthcheck[2:-1], healthcheck[-1].replace(":54321/", f":{env['TUSKBASE_PORT']}/")]
    api = tuskbase("serve", env=env)
    try:
        wait_until(lambda: subprocess.run(probe, capture_output=True, timeout=10).returncode == 0,
                   "healthy (the compose healthcheck)", api)
    finally:
        stop(api)
    assert not (tmp_path / "api" / "authenticator_password").exists(), "the API used a password of its own"


def test_the_compose_worker_and_feed_run_without_the_secrets_they_are_not_given(empty_database, tmp_path):
    """The worker and the feed get no token secret and no `authenticator` password: they must run without them,
    and must not generate stand-ins into the data folder (the compose stack shares one data volume)."""
    environments = compose_environments(tmp_path)
    run_migrate(environments, empty_database, tmp_path)
    processes = {name: tuskbase(name, env=localize(environments[name], empty_database, tmp_path / name))
                 for name in ("worker", "feed")}
    try:
        time.sleep(4.0)
        for name, process in processes.items():
            assert process.poll() is None, f"{name}: {output(process)}"
    finally:
        for name, process in processes.items():
            assert stop(process) == 0, f"{name}: {output(process)}"
    for name in processes:
        generated = sorted(p.name for p in (tmp_path / name).glob("*") if p.is_file()) if (tmp_path / name).exists() \
            else []
        assert not {"jwt_secret", "authenticator_password"} & set(generated), (name, generated)


def test_the_chart_release_migrates_serves_its_probes_and_keeps_one_feed_leader(empty_database, tmp_path):
    environments = chart_environments()
    run_migrate(environments, empty_database, tmp_path)

    env = localize(environments["api"], empty_database, tmp_path / "api")
    base = f"http://127.0.0.1:{env['TUSKBASE_PORT']}"
    api = tuskbase("serve", env=env)
    try:
        def probe_ok(path: str) -> bool:
            try:
                return httpx.get(base + path, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(lambda: probe_ok("/ready"), "ready (the readiness probe)", api)
        assert probe_ok("/health")
    finally:
        stop(api)

    # feed.replicas defaults to 2: one leader holding the advisory lock, one standby that takes over.
    from tuskbase.sync.feed import LEADER_LOCK

    def lock_holder() -> int | None:
        with psycopg.connect(empty_database, autocommit=True) as conn:
            row = conn.execute(
                "select pid from pg_locks where locktype = 'advisory' and granted and database = "
                "(select oid from pg_database where datname = current_database()) "
                "and ((classid::bigint << 32) | objid::bigint) = %s", (LEADER_LOCK,)).fetchone()
        return row[0] if row else None

    feed_env = localize(environments["feed"], empty_database, tmp_path / "feed")
    # The worker runs beside the feeds: it must boot with its settings and stop cleanly on SIGTERM.
    worker = tuskbase("worker", env=localize(environments["worker"], empty_database, tmp_path / "worker"))
    leader = tuskbase("feed", env=feed_env)
    standby = None
    try:
        wait_until(lambda: lock_holder() is not None, "leading", leader)
        first = lock_holder()
        standby = tuskbase("feed", env=feed_env)
        time.sleep(2.0)
        assert standby.poll() is None, output(standby)
        assert lock_holder() == first, "the standby took the lock while the leader was alive"
        assert stop(leader) == 0, output(leader)
        wait_until(lambda: lock_holder() not in (None, first), "taken over by the standby", standby, within=20)
        assert worker.poll() is None, output(worker)
        assert stop(worker) == 0, output(worker)
    finally:
        stop(leader)
        stop(worker)
        if standby is not None:
            stop(standby)
