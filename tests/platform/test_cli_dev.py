"""`tuskbase dev` as a new user runs it: embedded Postgres, migrations, API, worker; Ctrl-C stops all."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from uuid import uuid4

import httpx
import psycopg
import pytest

from tests.conftest import TODO_APP, free_port

READY_WITHIN = 30.0


@pytest.fixture
def workdir():
    folder = Path(tempfile.mkdtemp(prefix="tuskbase-dev-"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def dev_env(workdir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSKBASE_")}
    env.update({"TUSKBASE_DATA_DIR": str(workdir / ".tuskbase"), "TUSKBASE_APP_DIR": str(TODO_APP),
                "TUSKBASE_PORT": str(free_port()), "TUSKBASE_DB_PORT": str(free_port())}, **extra)
    return env


def tuskbase(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    # Output goes to a file the test can read while the process runs (a pipe would need a reader thread).
    output = open(cwd / f"output-{time.monotonic_ns()}.txt", "w+")  # noqa: SIM115 (closed by output_of)
    process = subprocess.Popen([sys.executable, "-m", "tuskbase.cli", *args], env=env, cwd=cwd, text=True,
                               stdout=output, stderr=subprocess.STDOUT)
    process.output = output  # type: ignore[attr-defined]
    return process


def output_of(process: subprocess.Popen[str]) -> str:
    process.output.seek(0)  # type: ignore[attr-defined]
    return process.output.read()  # type: ignore[attr-defined]


def wait_ready(env: dict[str, str], process: subprocess.Popen[str]) -> float:
    """Seconds until /ready answers 200 and `dev` has printed its banner."""
    started = time.monotonic()
    url = f"http://127.0.0.1:{env['TUSKBASE_PORT']}/ready"
    while time.monotonic() - started < READY_WITHIN:
        assert process.poll() is None, output_of(process)
        try:
            if httpx.get(url, timeout=1).status_code == 200 and "Press Ctrl-C" in output_of(process):
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"/ready did not answer 200 within {READY_WITHIN}s:\n{output_of(process)}")


def interrupt(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    return output_of(process)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_dev_starts_everything_and_keeps_data_across_runs(workdir):
    env = dev_env(workdir)
    db_url = f"postgresql://postgres@127.0.0.1:{env['TUSKBASE_DB_PORT']}/tuskbase"

    first = tuskbase("dev", env=env, cwd=workdir)
    wait_ready(env, first)
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("show wal_level").fetchone()[0] == "logical"
        conn.execute("insert into lists (owner_id, title) values (gen_random_uuid(), 'kept')")
    out = interrupt(first)
    assert first.returncode == 0, out
    assert "anon key:" in out and "service_role key:" in out
    assert f"http://127.0.0.1:{env['TUSKBASE_PORT']}" in out
    assert not port_open(int(env["TUSKBASE_DB_PORT"])), "Ctrl-C left the embedded Postgres running"
    assert not port_open(int(env["TUSKBASE_PORT"])), "Ctrl-C left the API running"

    second = tuskbase("dev", env=env, cwd=workdir)
    wait_ready(env, second)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select title from lists").fetchall() == [("kept",)]
    out = interrupt(second)
    assert "schema is current" in out


def run_to_end(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = tuskbase(*args, env=env, cwd=cwd)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        interrupt(process)  # a command that should have ended must not outlive the test
        raise AssertionError(f"`tuskbase {' '.join(args)}` did not end:\n{output_of(process)}") from None
    return process.returncode, output_of(process).strip()


def test_bad_setting_is_one_line(workdir):
    code, out = run_to_end("dev", env=dev_env(workdir, TUSKBASE_PORT="abc"), cwd=workdir)
    assert code == 1
    assert out == "tuskbase: error: TUSKBASE_PORT must be a whole number, got 'abc'"


def test_taken_database_port_is_one_line(workdir):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, out = run_to_end("migrate", env=dev_env(workdir, TUSKBASE_DB_PORT=str(port)), cwd=workdir)
    assert code == 1
    assert out.splitlines()[-1] == (
        f"tuskbase: error: port 127.0.0.1:{port} is taken; set TUSKBASE_DB_PORT to a free port"
    )


def test_unreachable_external_database_is_one_line(workdir):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    code, out = run_to_end("dev", env=dev_env(workdir, TUSKBASE_DATABASE_URL=url), cwd=workdir)
    assert code == 1
    last = out.splitlines()[-1]
    assert last.startswith("tuskbase: error: cannot reach the database at postgresql://postgres@127.0.0.1:")
    assert "nothing" in last


def test_external_database_without_logical_wal_is_reported(capsys):
    """The machine's own Postgres (5432) runs with wal_level=replica: `tuskbase` must say sync needs logical."""
    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            wal_level = conn.execute("show wal_level").fetchone()[0]
    except psycopg.OperationalError:
        pytest.skip("no Postgres on 127.0.0.1:5432")
    if wal_level == "logical":
        pytest.skip("the Postgres on 5432 already has wal_level=logical")
    from tuskbase.cli import check_database
    from tuskbase.config import Settings

    check_database(Settings(database_url=url))
    assert f"warning: wal_level is {wal_level!r}" in capsys.readouterr().out


def test_dev_on_an_external_database(workdir, database):
    """With TUSKBASE_DATABASE_URL, `dev` starts no embedded server and serves that database."""
    env = dev_env(workdir, TUSKBASE_DATABASE_URL=database)
    process = tuskbase("dev", env=env, cwd=workdir)
    wait_ready(env, process)
    out = interrupt(process)
    assert process.returncode == 0, out
    assert "using the database at postgresql://postgres@127.0.0.1:" in out
    assert "starting the embedded Postgres" not in out
    assert not (workdir / ".tuskbase" / "pgdata").exists()


# --- a dev stack that behaves (issue 11) -------------------------------------------------------------------


def child_pid(parent: subprocess.Popen[str], pattern: str) -> int:
    """The pid of `parent`'s child whose command line matches `pattern` (pgrep -f)."""
    found = subprocess.run(["pgrep", "-P", str(parent.pid), "-f", pattern], capture_output=True, text=True)
    pids = [int(pid) for pid in found.stdout.split()]
    assert len(pids) == 1, f"children matching {pattern!r}: {pids}"
    return pids[0]


def user_headers(workdir: Path, user_id: str) -> dict[str, str]:
    """Headers of a signed-in user of the dev stack in `workdir`, signed with the stack's own secret."""
    from tuskbase.tokens import Signer

    signer = Signer(secret=(workdir / ".tuskbase" / "jwt_secret").read_text().strip(), issuer="tuskbase")
    now = int(time.time())
    token = signer.sign({"sub": user_id, "role": "authenticated", "aud": "authenticated", "iat": now,
                         "exp": now + 3600, "iss": "tuskbase"})
    return {"apikey": signer.api_key("anon"), "Authorization": f"Bearer {token}"}


def wait_for_line(process: subprocess.Popen[str], text: str, within: float = 30.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        out = output_of(process)
        for line in out.splitlines():
            if text in line:
                return line
        time.sleep(0.1)
    raise AssertionError(f"no line with {text!r} within {within}s:\n{output_of(process)}")


def test_a_killed_feed_is_restarted_and_every_write_reaches_the_feed_once(workdir):
    import threading
    import uuid

    env = dev_env(workdir)
    process = tuskbase("dev", env=env, cwd=workdir)
    wait_ready(env, process)
    api = f"http://127.0.0.1:{env['TUSKBASE_PORT']}"
    user = str(uuid.uuid4())
    http = httpx.Client(base_url=api, headers=user_headers(workdir, user), timeout=30)
    try:
        first = http.post("/sync/v1/pull", json={"client_id": "device", "cursor": None})
        assert first.status_code == 200, first.text
        cursor = first.json()["cursor"]
        feed_pid = child_pid(process, "tuskbase.cli feed")

        statuses: list[int] = []
        ids: list[str] = []

        def write(count: int) -> None:
            writer = httpx.Client(base_url=api, headers={**http.headers, "Prefer": "return=representation"},
                                  timeout=30)
            for n in range(count):
                response = writer.post("/rest/v1/lists", json={"title": f"write {n}"})
                statuses.append(response.status_code)
                if response.status_code == 201:
                    ids.append(response.json()[0]["id"])

        writer = threading.Thread(target=write, args=(400,))
        writer.start()
        while len(statuses) < 100 and writer.is_alive():
            time.sleep(0.01)
        os.kill(feed_pid, signal.SIGKILL)
        writer.join(timeout=120)

        died = wait_for_line(process, f"feed (pid {feed_pid}) exited with status -9; restarting it in")
        restarted = wait_for_line(process, "feed restarted (pid ")
        new_pid = child_pid(process, "tuskbase.cli feed")
        assert new_pid != feed_pid and f"(pid {new_pid})" in restarted, (died, restarted)
        assert statuses == [201] * 400, [s for s in statuses if s != 201]

        # Every write reaches the device through the change log, exactly once, after the restart.
        created: list[str] = []
        deadline = time.monotonic() + 60
        while len(created) < 400 and time.monotonic() < deadline:
            answer = http.post("/sync/v1/pull", json={"client_id": "device", "cursor": cursor}).json()
            assert not answer["reset"], answer
            created += [row["id"] for row in answer["changes"].get("lists", {}).get("created", [])]
            cursor = answer["cursor"]
            if not answer["has_more"]:
                time.sleep(0.2)
        assert sorted(created) == sorted(ids)
        db_url = f"postgresql://postgres@127.0.0.1:{env['TUSKBASE_DB_PORT']}/tuskbase"
        logged: list[str] = []
        with psycopg.connect(db_url, autocommit=True) as conn:
            while len(logged) < 400 and time.monotonic() < deadline:
                time.sleep(0.2)
                logged = [key for (key,) in conn.execute(
                    "select c.key->>'id' from sync.changes c join sync.tables t on t.id = c.tbl "
                    "where t.relid = 'public.lists'::regclass and c.op = 'I'")]
        assert sorted(logged) == sorted(ids), "the change log holds each insert exactly once"
    finally:
        http.close()
        out = interrupt(process)
    assert process.returncode == 0, out
    assert not port_open(int(env["TUSKBASE_DB_PORT"]))


def test_commands_beside_a_running_dev_stack_use_its_database_and_leave_it_running(workdir):
    env = dev_env(workdir)
    process = tuskbase("dev", env=env, cwd=workdir)
    wait_ready(env, process)
    api = f"http://127.0.0.1:{env['TUSKBASE_PORT']}"
    try:
        for command in (["migrate"], ["policies", "apply", "--dry-run"]):
            code, out = run_to_end(*command, env=env, cwd=workdir)
            assert code == 0, out
            assert httpx.get(f"{api}/ready").status_code == 200, f"`{' '.join(command)}` stopped the stack's database"
            assert httpx.get(f"{api}/rest/v1/lists", headers=user_headers(workdir, str(uuid4()))).status_code == 200
            assert "already running for another tuskbase command" in out, out
            assert "left the embedded Postgres running" in out, out

        # `keys` beside the stack prints the stack's own keys, and they work against it.
        code, out = run_to_end("keys", env=env, cwd=workdir)
        assert code == 0, out
        assert out.splitlines()[0].startswith("anon key:") and out.splitlines()[0] in output_of(process)
        service = out.splitlines()[1].removeprefix("service_role key:").strip()
        assert f"service_role key: {service}" in output_of(process), "not the keys of the banner"
        assert httpx.get(f"{api}/rest/v1/lists", headers={"apikey": service}).status_code == 200
    finally:
        out = interrupt(process)
    assert process.returncode == 0, out
    assert not port_open(int(env["TUSKBASE_DB_PORT"])), "the stack, the last user, did not stop its Postgres"


def test_a_one_shot_command_alone_stops_the_server_it_started(workdir):
    env = dev_env(workdir)
    code, out = run_to_end("migrate", env=env, cwd=workdir)
    assert code == 0, out
    assert "already running" not in out
    assert not port_open(int(env["TUSKBASE_DB_PORT"]))


def test_taken_api_port_is_one_line(workdir):
    """A listener with SO_REUSEPORT (as granian binds) on the API port: `dev` must refuse it, not share it."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = dev_env(workdir, TUSKBASE_PORT=str(port))
        code, out = run_to_end("dev", env=env, cwd=workdir)
    assert code == 1, out
    assert out.splitlines()[-1] == f"tuskbase: error: port 127.0.0.1:{port} is taken; set TUSKBASE_PORT to a free port"
    assert not port_open(int(env["TUSKBASE_DB_PORT"]))
    assert not (workdir / ".tuskbase" / "pgdata").exists(), "refused before anything started"


def test_keys_without_a_data_dir_invent_no_secret(workdir):
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    env = dev_env(workdir)
    env.pop("TUSKBASE_DATA_DIR")
    code, out = run_to_end("keys", env=env, cwd=elsewhere)
    assert code == 1, out
    assert out == (f"tuskbase: error: no data dir at {elsewhere / '.tuskbase'}: run `tuskbase keys` where "
                   "`tuskbase dev` runs, or set TUSKBASE_DATA_DIR to the data dir of the running stack "
                   "(or TUSKBASE_JWT_SECRET)")
    assert not (elsewhere / ".tuskbase").exists(), "a secret was generated"


def test_dev_signs_up_without_email_confirmation_as_supabase_local_does(workdir):
    env = dev_env(workdir)
    process = tuskbase("dev", env=env, cwd=workdir)
    wait_ready(env, process)
    api = f"http://127.0.0.1:{env['TUSKBASE_PORT']}/auth/v1"
    try:
        anon = {"apikey": user_headers(workdir, str(uuid4()))["apikey"]}
        credentials = {"email": "new@example.com", "password": "pw-123456789"}
        signup = httpx.post(f"{api}/signup", headers=anon, json=credentials)
        assert signup.status_code == 200, signup.text
        assert signup.json()["access_token"], "a fresh sign-up must get a session at once"
        signin = httpx.post(f"{api}/token?grant_type=password", headers=anon,
                            json=credentials)
        assert signin.status_code == 200, signin.text
    finally:
        out = interrupt(process)
    assert "email confirmations off" in out


def test_dev_keeps_confirmations_on_when_the_setting_says_so():
    from tuskbase.cli import dev_settings
    from tuskbase.config import load

    assert dev_settings(load({}), {}).auth_email_autoconfirm is True
    explicit = {"TUSKBASE_AUTH_EMAIL_AUTOCONFIRM": "false"}
    assert dev_settings(load(explicit), explicit).auth_email_autoconfirm is False


def test_a_killed_api_is_restarted_without_its_orphaned_workers(workdir):
    """granian's master killed with -9 leaves its worker holding the port: the restart must kill that group."""
    env = dev_env(workdir)
    process = tuskbase("dev", env=env, cwd=workdir)
    wait_ready(env, process)
    try:
        master = child_pid(process, "granian")
        workers = [int(pid) for pid in subprocess.run(["pgrep", "-P", str(master)], capture_output=True,
                                                      text=True).stdout.split()]
        assert workers, "granian runs its app in worker processes"
        os.kill(master, signal.SIGKILL)
        wait_for_line(process, f"api (pid {master}) exited with status -9; restarting it in")
        wait_for_line(process, "api restarted (pid ")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{env['TUSKBASE_PORT']}/ready", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the restarted API never answered /ready:\n{output_of(process)}")
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), \
                f"worker {pid} of the killed API still runs"
    finally:
        out = interrupt(process)
    assert process.returncode == 0, out
    assert not port_open(int(env["TUSKBASE_PORT"]))
