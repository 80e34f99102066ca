"""Build the image without Docker, into a Debian root filesystem, and run its processes: a slow, manual check.

No Docker engine runs on our machines, so this plays the Dockerfile's instructions itself (ENV, WORKDIR, COPY
of the .dockerignore'd context, RUN under chroot, USER) over a Debian bookworm root with Python 3.11 standing
in for `python:3.11-slim`, then starts `migrate`, `serve` (until /ready answers 200), `worker` and `feed` as
the image's user through the image's ENTRYPOINT, on a read-only root with only /tmp and the data folder
writable (as the Helm chart runs them), against an embedded Postgres on loopback.

    apt-get install debootstrap
    debootstrap --variant=minbase bookworm /tmp/rootfs http://deb.debian.org/debian
    .venv/bin/python -m tests.packaging.build_in_chroot /tmp/rootfs

Needs root (chroot). Takes minutes: it installs every dependency from PyPI. Not part of `make test`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from tests.packaging.support import ROOT, dockerfile_instructions
from tests.packaging.test_dockerfile import build_context
from tuskbase.embedded import EmbeddedPostgres

# What `python:3.11-slim` brings: CPython 3.11 with pip and setuptools first on PATH.
BASE_PATH = "/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_SETUP = (
    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
    "python3.11 python3.11-venv ca-certificates >/dev/null && python3.11 -m venv /usr/local/python"
)
BASE_PIP = "/usr/local/python/bin/pip install -q --upgrade pip setuptools wheel"


def say(line: str) -> None:
    print(f"build_in_chroot: {line}", flush=True)


def chroot(rootfs: Path, env: dict[str, str], command: str, user: str | None = None,
           **popen: object) -> subprocess.Popen[str]:
    args = ["chroot", *([f"--userspec={user}"] if user else []), str(rootfs), "/usr/bin/env", "-i",
            *[f"{k}={v}" for k, v in env.items()], "/bin/sh", "-c", command]
    return subprocess.Popen(args, text=True, **popen)


def run(rootfs: Path, env: dict[str, str], command: str, user: str | None = None) -> None:
    process = chroot(rootfs, env, command, user)
    if process.wait() != 0:
        raise SystemExit(f"failed ({process.returncode}): {command}")


def prepare_base(rootfs: Path) -> None:
    # The machine's trust store, so that pip inside reaches PyPI the way it does outside.
    shutil.copy2("/etc/resolv.conf", rootfs / "etc" / "resolv.conf")
    (rootfs / "etc" / "ssl" / "certs").mkdir(parents=True, exist_ok=True)
    shutil.copy2("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    if not (rootfs / "usr" / "local" / "python" / "bin" / "pip").exists():
        say("installing Python 3.11 as the base image's stand-in")
        run(rootfs, {"PATH": BASE_PATH, "HOME": "/root"}, BASE_SETUP)
        # apt's ca-certificates rewrote the bundle: put the machine's back for pip.
        shutil.copy2("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc" / "ssl" / "certs" / "ca-certificates.crt")
        run(rootfs, {"PATH": BASE_PATH, "HOME": "/root"}, BASE_PIP)


def build(rootfs: Path) -> tuple[dict[str, str], str, str, list[str], list[str]]:
    """Play the Dockerfile. Returns the image's env, workdir, user, entrypoint and cmd."""
    env = {"PATH": BASE_PATH, "HOME": "/root"}
    workdir, user = "/", "0:0"
    entrypoint: list[str] = []
    cmd: list[str] = []
    context = sorted(build_context() - {"Dockerfile", ".dockerignore"})
    for kind, args in dockerfile_instructions():
        say(f"{kind} {args[:100]}")
        if kind == "ENV":
            for token in shlex.split(args):
                name, _, value = token.partition("=")
                env[name] = value
        elif kind == "WORKDIR":
            workdir = args
            (rootfs / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif kind == "COPY":
            *sources, destination = args.split()
            target = rootfs / workdir.lstrip("/") / destination
            for source in sources:
                prefix = "" if source in (".", "./") else source.rstrip("/")
                for path in context:
                    if not prefix or path == prefix or path.startswith(prefix + "/"):
                        relative = path if not prefix or path != prefix else Path(path).name
                        (target / relative).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(ROOT / path, target / relative)
        elif kind == "RUN":
            run(rootfs, env, f"cd {shlex.quote(workdir)} && {args}")
        elif kind == "USER":
            user = args
        elif kind == "ENTRYPOINT":
            entrypoint = json.loads(args)
        elif kind == "CMD":
            cmd = json.loads(args)
    return env, workdir, user, entrypoint, cmd


class Mounts:
    """Mounts made for the build or the run, undone in reverse order."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def mount(self, *args: str, at: Path) -> None:
        subprocess.run(["mount", *args, str(at)], check=True)
        self.points.append(at)

    def undo(self) -> None:
        for point in reversed(self.points):
            if subprocess.run(["umount", str(point)], check=False).returncode != 0:
                subprocess.run(["umount", "--lazy", str(point)], check=False)
        self.points.clear()


def container_mounts(mounts: Mounts, root: Path) -> None:
    mounts.mount("--bind", "/dev", at=root / "dev")
    mounts.mount("-t", "proc", "proc", at=root / "proc")
    # Container runtimes give every container a writable /dev/shm (Dramatiq's processes share memory there).
    mounts.mount("-t", "tmpfs", "-o", "mode=1777,size=64m", "shm", at=root / "dev" / "shm")


def main(rootfs: Path) -> int:
    if os.geteuid() != 0:
        raise SystemExit("needs root (chroot)")
    if (rootfs / "opt" / "tuskbase").exists():
        raise SystemExit(f"{rootfs} already holds a build: give a fresh root (the RUN steps are not idempotent)")
    mounts = Mounts()
    try:
        container_mounts(mounts, rootfs)
        prepare_base(rootfs)
        started = time.monotonic()
        env, workdir, user, entrypoint, cmd = build(rootfs)
        say(f"built in {time.monotonic() - started:.0f}s; user {user}, entrypoint {entrypoint}, cmd {cmd}")
    finally:
        mounts.undo()

    # Run as the chart does: a read-only root, with /tmp and the data folder as the only writable places.
    runroot = rootfs.with_name(rootfs.name + "-run")
    runroot.mkdir(exist_ok=True)
    uid, gid = user.split(":")
    server = None
    folder = Path(tempfile.mkdtemp(prefix="tuskbase-chroot-pg-"))
    started_processes: list[subprocess.Popen[str]] = []
    try:
        mounts.mount("--bind", str(rootfs), at=runroot)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(runroot)], check=True)
        container_mounts(mounts, runroot)
        mounts.mount("-t", "tmpfs", "-o", "mode=1777", "tmp", at=runroot / "tmp")
        data_dir = runroot / env["TUSKBASE_DATA_DIR"].lstrip("/")
        mounts.mount("-t", "tmpfs", "-o", f"mode=0750,uid={uid},gid={gid}", "data", at=data_dir)
        probe = chroot(runroot, {"PATH": BASE_PATH}, "touch /.writable 2>/dev/null", stdout=subprocess.DEVNULL)
        if probe.wait() == 0:
            raise SystemExit("the run root is writable: the read-only check would prove nothing")
        say(f"running from {runroot}: read-only root, writable /tmp and {env['TUSKBASE_DATA_DIR']}")

        os.chmod(folder, 0o755)
        server = EmbeddedPostgres(folder, 55432)
        server.start(log=say)
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("create database tuskbase")
        run_env = {**env, "TUSKBASE_DATABASE_URL": "postgresql://postgres:unused@127.0.0.1:55432/tuskbase",
                   "TUSKBASE_JWT_SECRET": "c" * 48, "TUSKBASE_AUTHENTICATOR_PASSWORD": "chroot-check",
                   "TUSKBASE_APP_DIR": f"{workdir}/examples/todo", "TUSKBASE_PORT": "55421"}
        image = " ".join(shlex.quote(a) for a in entrypoint)
        run(runroot, run_env, f"cd {workdir} && exec {image} migrate", user=user)
        say("migrate: done")

        api = chroot(runroot, run_env, f"cd {workdir} && exec {image} {' '.join(cmd)}", user=user)
        started_processes.append(api)
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get("http://127.0.0.1:55421/ready", timeout=2)
                if response.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if api.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("serve: /ready never answered 200")
            time.sleep(0.5)
        say(f"serve: /ready {response.status_code} {response.text}")
        others = {name: chroot(runroot, run_env, f"cd {workdir} && exec {image} {name}", user=user)
                  for name in ("worker", "feed")}
        started_processes.extend(others.values())
        time.sleep(8)
        for name, process in others.items():
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode}")
            say(f"{name}: running")
        for process in (api, *others.values()):
            process.send_signal(signal.SIGTERM)  # reaches tini through chroot and env (both exec)
        statuses = [p.wait(30) for p in (api, *others.values())]
        say(f"stopped on SIGTERM with statuses {statuses}")
        return 0 if statuses == [0, 0, 0] else 1
    finally:
        for process in started_processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
        if server is not None:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        mounts.undo()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
