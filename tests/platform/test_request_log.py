"""One access-log line per request (method, path, status, duration, request id, user id; never a credential),
JSON under TUSKBASE_LOG_FORMAT=json, and the worker's log lines in the same format as the API's."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid

import httpx

from tests.conftest import serve_process
from tests.platform.test_workers import heartbeat_message, wait_for_heartbeat
from tuskbase.observability import JsonFormatter, loggable_target


def access_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "tuskbase.access"]


def test_one_line_per_request_with_user_and_no_credentials(api, caplog):
    caplog.set_level(logging.INFO, logger="tuskbase.access")
    user = uuid.uuid4()
    token = api.user_token(user)
    answer = httpx.get(f"{api.url}/rest/v1/todos?select=id&limit=1",
                       headers={"Authorization": f"Bearer {token}", "apikey": api.anon_key})
    assert answer.status_code == 200
    anonymous = httpx.get(f"{api.url}/health?apikey={api.anon_key}&access_token={token}")
    bad_token = httpx.get(f"{api.url}/rest/v1/todos", headers={"Authorization": "Bearer not-a-token",
                                                                  "apikey": api.anon_key})
    assert bad_token.status_code == 401
    time.sleep(0.1)  # the line is written once the answer is sent
    records = access_records(caplog)
    assert len(records) == 3
    rest, health, refused = (r.access for r in records)
    assert rest == {"method": "GET", "path": "/rest/v1/todos?select=id&limit=1", "status": 200,
                    "duration_ms": rest["duration_ms"], "request_id": answer.headers["x-request-id"],
                    "user_id": str(user)}
    assert isinstance(rest["duration_ms"], float) and rest["duration_ms"] > 0
    assert health["path"] == "/health?apikey=***&access_token=***" and health["user_id"] is None
    assert health["request_id"] == anonymous.headers["x-request-id"]
    assert refused["status"] == 401 and refused["user_id"] is None
    for record in records:
        line = record.getMessage() + JsonFormatter().format(record)
        assert token not in line and api.anon_key not in line and "not-a-token" not in line


def test_secret_query_parameters_are_masked():
    assert loggable_target("/auth/v1/verify", b"token=abc&type=signup&redirect_to=x") == \
        "/auth/v1/verify?token=***&type=signup&redirect_to=x"
    assert loggable_target("/sync/v1/live", b"access_token=eyJ&APIKEY=k&seq=3") == \
        "/sync/v1/live?access_token=***&APIKEY=***&seq=3"
    assert loggable_target("/rest/v1/t", b"") == "/rest/v1/t"


def test_access_log_is_json_under_log_format_json(database, tmp_path):
    log_file = tmp_path / "api.log"
    with open(log_file, "wb") as sink, serve_process(database, tmp_path / "data", sink, log_format="json") as base:
        answer = httpx.get(f"{base}/rest/v1/todos?limit=1", headers={"apikey": "secret-looking-key"})
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "tuskbase.access" and line["path"].startswith("/rest/")]
    assert len(access) == 1
    assert access[0]["status"] == answer.status_code == 401
    assert access[0]["request_id"] == answer.headers["x-request-id"]
    assert access[0]["method"] == "GET" and access[0]["user_id"] is None
    assert "secret-looking-key" not in log_file.read_text()


def test_worker_logs_in_the_api_format(admin, database):
    env = {**os.environ, "TUSKBASE_DATABASE_URL": database, "TUSKBASE_WORKER_THREADS": "1",
           "TUSKBASE_LOG_FORMAT": "json", "TUSKBASE_LOG_LEVEL": "INFO"}
    worker = subprocess.Popen([sys.executable, "-m", "tuskbase.cli", "worker"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    from dramatiq_postgres import PostgresBroker

    broker = PostgresBroker(url=database, results=False)
    try:
        name = f"test-{uuid.uuid4()}"
        broker.enqueue(heartbeat_message(name))
        assert wait_for_heartbeat(admin, name)
    finally:
        broker.close()
        worker.send_signal(signal.SIGTERM)
        try:
            out, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            out, _ = worker.communicate()
    lines = [line for line in out.decode().splitlines() if line.strip()]
    assert lines, "the worker logged nothing"
    entries = [json.loads(line) for line in lines]  # every line is one JSON object, as the API writes them
    assert all({"ts", "level", "logger", "message"} <= set(entry) for entry in entries)
    assert any(entry["logger"].startswith("dramatiq") for entry in entries)
