"""Shared pieces of the benchmarks: a throwaway embedded Postgres, a served API, and wrk."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg

from tuskbase import migrate, policies, serving
from tuskbase.config import Settings
from tuskbase.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[1]
TODO_APP = ROOT / "examples" / "todo"
JWT_SECRET = "bench-secret-bench-secret-bench-secret-0123"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def database() -> Iterator[tuple[EmbeddedPostgres, str]]:
    """A migrated database of the example app on a throwaway embedded Postgres: (server, admin URL)."""
    folder = Path(tempfile.mkdtemp(prefix="tuskbase-bench-"))
    os.chmod(folder, 0o755)
    server = EmbeddedPostgres(folder, free_port(), extra_options={"fsync": "off", "synchronous_commit": "off"})
    server.start(log=lambda _line: None)
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("create database bench")
        url = server.dsn("bench")
        migrate.migrate(url, TODO_APP)
        policies.apply(url, TODO_APP)
        yield server, url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def api_env(url: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSKBASE_")}
    env.update({"TUSKBASE_DATABASE_URL": url, "TUSKBASE_PORT": str(port), "TUSKBASE_JWT_SECRET": JWT_SECRET,
                "TUSKBASE_APP_DIR": str(TODO_APP), "TUSKBASE_LOG_LEVEL": "WARNING",
                "TUSKBASE_DATA_DIR": tempfile.mkdtemp(prefix="tuskbase-bench-data-")}, **extra)
    return env


@contextlib.contextmanager
def serve(command: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    base = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            yield from _until_stopped(process, log, command, base)
    finally:
        data_dir = Path(env.get("TUSKBASE_DATA_DIR", ""))
        if data_dir.name.startswith("tuskbase-bench-data-"):  # made by api_env for this server only
            shutil.rmtree(data_dir, ignore_errors=True)


def _until_stopped(process: subprocess.Popen[bytes], log, command: list[str], base: str) -> Iterator[str]:
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"server {command[:4]} did not become ready:\n{tail}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def granian_command(port: int, workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "tuskbase.app:asgi_factory",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--log-level", "warning", *serving.granian_options(Settings())]


def uvicorn_command(port: int, workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", "tuskbase.app:asgi_factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log",
            "--loop", "uvloop", "--http", "httptools"]


def ensure_wrk() -> None:
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)


def wrk(url: str, *, seconds: int = 8, connections: int = 64, threads: int = 2,
        headers: dict[str, str] | None = None) -> float:
    """Requests per second wrk measured (non-2xx answers make the run fail: a benchmark of errors lies)."""
    ensure_wrk()
    args = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw error answers from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
