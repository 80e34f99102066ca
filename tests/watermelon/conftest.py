"""Fixtures of the WatermelonDB tests: the real WatermelonDB client (LokiJS, headless in Node) as devices, the
feed consumer running, and a way to wait until the feed has persisted every commit so far."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live.conftest import running_feed  # noqa: F401  (a fixture)

NODE_DIR = Path(__file__).parent / "node"


class HarnessError(Exception):
    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class Devices:
    """The Node harness (harness.js): one process holding any number of WatermelonDB devices."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.process = subprocess.Popen(["node", "harness.js"], cwd=NODE_DIR, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.ids = itertools.count(1)
        self.answers: dict[int, list[dict[str, Any]]] = {}
        self.changed = threading.Condition()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            answer = json.loads(line)
            with self.changed:
                self.answers.setdefault(answer["id"], []).append(answer)
                self.changed.notify_all()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip())

    def send(self, op: str, **fields: Any) -> int:
        number = next(self.ids)
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"id": number, "op": op, **fields}) + "\n")
        self.process.stdin.flush()
        return number

    def wait(self, number: int, *, final: bool = True, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for answer in self.answers.get(number, ()):
                    if answer["final"] or not final:
                        if not answer["ok"]:
                            raise HarnessError(answer["error"], answer.get("status"))
                        return answer["result"]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"no answer to command {number}; harness log:\n" + "\n".join(self.log[-30:]))
                self.changed.wait(remaining)

    def call(self, op: str, **fields: Any) -> Any:
        return self.wait(self.send(op, **fields))

    # -- conveniences --------------------------------------------------------------------------------------

    def open(self, device: str, token: str, schema_version: int = 1, *, members: bool = False) -> None:
        self.call("open", device=device, url=self.api.url, apikey=self.api.anon_key, token=token,
                  schemaVersion=schema_version, members=members)

    def sync(self, device: str, **options: Any) -> dict[str, Any]:
        return self.call("sync", device=device, **options)

    def records(self, device: str, table: str) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.call("records", device=device, table=table)["records"]}

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _install_harness() -> None:
    """`make test` installs the harness (npm ci); a bare `pytest` does it here the first time."""
    if (NODE_DIR / "node_modules" / "@nozbe" / "watermelondb").is_dir():
        return
    npm = shutil.which("npm")
    assert npm, "npm is needed to install the WatermelonDB harness (tests/watermelon/node)"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True)


@pytest.fixture
def devices(api) -> Iterator[Devices]:
    assert shutil.which("node"), "node is needed to run the WatermelonDB client"
    _install_harness()
    harness = Devices(api)
    assert harness.call("ping") == "pong"
    try:
        yield harness
    finally:
        harness.close()


SETTLED = """
select greatest(coalesce((select lsn from sync.feed_state), '0/0'),
                coalesce((select max(confirmed_flush_lsn) from pg_replication_slots
                          where database = current_database()), '0/0')) >= %s::pg_lsn
"""


def settle(admin) -> None:
    """Wait until the feed has persisted every commit made so far (a pull then sees all of them)."""
    mark = admin.execute("select pg_logical_emit_message(true, 'tuskbase_test_settle', '')::text").fetchone()[0]
    deadline = time.monotonic() + 10
    # The feed has read past the mark once its state (a batch with changes) or its slot (a batch without) has.
    while not admin.execute(SETTLED, (mark,)).fetchone()[0]:
        assert time.monotonic() < deadline, "the feed did not catch up"
        time.sleep(0.01)
