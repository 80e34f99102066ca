"""One user must not starve the others (issue 10): 40 abandoned first pulls over a large table, by one user who
sees little of it, leave readiness, auth and another user's pulls answering within a second, and no backend
running a pull statement once the clients are gone."""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import psycopg

from tests.conftest import serve_api
from tests.sync.conftest import SyncClient, make_list, make_todo, new_user

ROWS = 300_000
ATTACKS = 40
WITHIN = 1.0  # seconds every probe must answer in
# A pull statement running: any statement of sync's connections, or pass A's scan wherever it runs.
ACTIVE_PULLS = ("select count(*) from pg_stat_activity where datname = current_database() and state = 'active' "
                "and (application_name = 'tuskbase-sync' or query like '%t.ctid > $1::text::tid%') "
                "and pid <> pg_backend_pid()")


class Probes(threading.Thread):
    """Calls /ready, /auth/v1/user and another user's pull in turn until stopped; keeps the slowest of each."""

    def __init__(self, api, auth_token: str, other: SyncClient) -> None:
        super().__init__(daemon=True)
        self.calls = {
            "ready": lambda client: client.get("/ready"),
            "auth": lambda client: client.get("/auth/v1/user", headers={"Authorization": f"Bearer {auth_token}"}),
            "pull": lambda _client: other.http.post("/sync/v1/pull",
                                                   json={"client_id": other.client_id, "cursor": other.cursor}),
        }
        self.client = httpx.Client(base_url=api.url, headers={"apikey": api.anon_key}, timeout=30)
        self.slowest = dict.fromkeys(self.calls, 0.0)
        self.failures: list[str] = []
        self.rounds = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for name, call in self.calls.items():
                started = time.monotonic()
                answer = call(self.client)
                took = time.monotonic() - started
                self.slowest[name] = max(self.slowest[name], took)
                if answer.status_code != 200:
                    self.failures.append(f"{name}: {answer.status_code} {answer.text[:200]}")
            self.rounds += 1
            time.sleep(0.05)


def _first_pull_request(api, token: str, client_id: str) -> bytes:
    body = json.dumps({"client_id": client_id, "cursor": None}).encode()
    return (f"POST /sync/v1/pull HTTP/1.1\r\nhost: x\r\napikey: {api.anon_key}\r\nauthorization: Bearer {token}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body


def test_forty_abandoned_first_pulls_starve_no_one(settings, database):
    settings = settings.replace(db_pool_min=1, db_pool_max=4, sync_pool_max=6, auth_email_autoconfirm=True)
    attacker, other_user = new_user(), new_user()
    with psycopg.connect(database, autocommit=True) as admin:
        # A large table the attacker sees almost none of: 300k todos in a stranger's list, 10 in the attacker's.
        stranger = make_list(admin, new_user(), "big")
        admin.execute("insert into public.todos (list_id, title) select %s, 'row ' || g "
                      "from generate_series(1, %s) g", (stranger, ROWS))
        mine = make_list(admin, attacker, "mine")
        for i in range(10):
            make_todo(admin, mine, f"mine {i}")
        make_todo(admin, make_list(admin, other_user, "theirs"), "theirs")
        admin.execute("vacuum analyze public.todos")

        with serve_api(settings) as api:
            signup = httpx.post(f"{api.url}/auth/v1/signup", headers={"apikey": api.anon_key},
                                json={"email": "probe@example.com", "password": "correct-horse-battery-9"})
            assert signup.status_code == 200, signup.text
            other = SyncClient(api, other_user)
            other.sync()  # the other user is an existing device, polling with its cursor
            probes = Probes(api, signup.json()["access_token"], other)
            probes.start()

            url = urlsplit(api.url)
            token = api.user_token(attacker)
            sockets = []
            for n in range(ATTACKS):
                conn = socket.create_connection((url.hostname, url.port))
                conn.sendall(_first_pull_request(api, token, f"attack-{n}"))
                sockets.append(conn)
            deadline = time.monotonic() + 10
            while admin.execute(ACTIVE_PULLS).fetchone()[0] == 0:  # the admitted pulls are scanning
                assert time.monotonic() < deadline, "no attacking pull ever ran"
                time.sleep(0.02)
            time.sleep(1.5)
            running = admin.execute(ACTIVE_PULLS).fetchone()[0]
            for conn in sockets:  # the clients go away
                conn.close()
            gone_at = time.monotonic()
            time.sleep(5)
            probes.stopping.set()  # its own pulls run on the sync pool too: let the last one end
            probes.join(30)
            left = admin.execute(ACTIVE_PULLS).fetchone()[0]
            after = time.monotonic() - gone_at

    print(f"slowest answers during the attack: {probes.slowest} over {probes.rounds} rounds; "
          f"{running} pulls running before the clients left, {left} {after:.1f} s after")
    assert running >= 1  # the attack did occupy backends while its clients waited
    assert left == 0, f"{left} backend(s) still running a pull {after:.1f} s after the clients went away"
    assert probes.rounds >= 3
    assert not probes.failures, probes.failures
    assert all(took < WITHIN for took in probes.slowest.values()), probes.slowest
