"""A message sent through each broker reaches a real `tuskbase worker` process and is processed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import dramatiq
import pytest

RABBITMQ_URL = os.environ.get("TUSKBASE_TEST_RABBITMQ_URL")


def start_worker(database: str, broker_url: str = "") -> subprocess.Popen[bytes]:
    env = {**os.environ, "TUSKBASE_DATABASE_URL": database, "TUSKBASE_BROKER_URL": broker_url,
           "TUSKBASE_WORKER_THREADS": "2"}
    return subprocess.Popen([sys.executable, "-m", "tuskbase.cli", "worker"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop(worker: subprocess.Popen[bytes]) -> str:
    worker.send_signal(signal.SIGTERM)
    try:
        out, _ = worker.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        out, _ = worker.communicate()
    return out.decode(errors="replace")


def heartbeat_message(name: str) -> dramatiq.Message:
    return dramatiq.Message(queue_name="platform", actor_name="heartbeat", args=(name,), kwargs={}, options={})


def wait_for_heartbeat(admin, name: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if admin.execute("select 1 from tuskbase.heartbeats where name = %s", (name,)).fetchone():
            return True
        time.sleep(0.1)
    return False


def round_trip(admin, database: str, broker: dramatiq.Broker, broker_url: str = "") -> None:
    name = f"test-{uuid.uuid4()}"
    worker = start_worker(database, broker_url)
    try:
        broker.enqueue(heartbeat_message(name))
        processed = wait_for_heartbeat(admin, name)
    finally:
        output = stop(worker)
    assert processed, f"the worker did not process the message; its output:\n{output}"


def test_postgres_broker_round_trip(admin, database):
    from dramatiq_postgres import PostgresBroker

    broker = PostgresBroker(url=database, results=False)
    try:
        round_trip(admin, database, broker)
        queued = admin.execute("select count(*) from dramatiq.queue where state = 'queued'").fetchone()[0]
        assert queued == 0
    finally:
        broker.close()


@pytest.mark.skipif(not RABBITMQ_URL, reason="TUSKBASE_TEST_RABBITMQ_URL is not set")
def test_rabbitmq_broker_round_trip(admin, database):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=RABBITMQ_URL)
    broker.declare_queue("platform")
    try:
        round_trip(admin, database, broker, RABBITMQ_URL)
    finally:
        broker.close()
