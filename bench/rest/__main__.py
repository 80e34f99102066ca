"""REST hot path: `GET /rest/v1/todos?id=eq.<id>` (one row, RLS on, authenticated JWT) against pgbench running
the same SQL transaction with the same number of clients, in the same run, on the same database.

The SQL pgbench runs is the statement the API itself compiles for that URL (taken from tuskbase.rest, not
written by hand), in two shapes, both with `-M prepared` as asyncpg prepares statements:

- the ceiling the issue defines, the request transaction (what the API sent until it set identity per session):

    BEGIN READ ONLY; select set_config('role', ...), set_config('request.jwt.claims', ...); <statement>; COMMIT

- exactly the statements the API sends now (`rest.pool.FastPool.acquire_as`), a stricter ceiling:

    select set_config('role', ..., false), set_config('request.jwt.claims', ..., false),
           set_config('default_transaction_read_only', 'on', false); <statement>

The API runs under granian (what `tuskbase serve` uses) with 1 and 2 workers; wrk drives it (installed with
apt-get when missing).

    python -m bench.rest                      # 64 clients, 8 s per measurement, 2 rounds
    BENCH_CLIENTS=8 BENCH_SECONDS=5 BENCH_ROUNDS=3 python -m bench.rest
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from bench.common import JWT_SECRET, api_env, database, free_port, granian_command, serve, wrk
from tuskbase import schema
from tuskbase.config import Settings
from tuskbase.embedded import bin_dir
from tuskbase.rest.handler import RestService
from tuskbase.tokens import ClaimsCache, Signer

USER = uuid.UUID("00000000-0000-4000-8000-0000000be4c4")


def seed(url: str) -> str:
    """One user with 10 lists of 100 todos (and other users' rows RLS must skip); returns one todo id."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into public.lists (owner_id, title) select %s, 'list ' || i "
                     "from generate_series(1, 10) i", (USER,))
        conn.execute("insert into public.lists (owner_id, title) select gen_random_uuid(), 'other ' || i "
                     "from generate_series(1, 100) i")
        conn.execute("insert into public.todos (list_id, title, position) "
                     "select l.id, 'todo ' || i, i from public.lists l, generate_series(1, 100) i")
        conn.execute("analyze")
        return str(conn.execute("select t.id from public.todos t join public.lists l on l.id = t.list_id "
                                "where l.owner_id = %s order by t.position limit 1 offset 50", (USER,)).fetchone()[0])


def api_statement(url: str, path: str, query: str) -> tuple[str, list[object]]:
    """The SQL and parameters the API compiles for GET /rest/v1/<path>?<query>."""
    settings = Settings(database_url=url, jwt_secret=JWT_SECRET)
    with psycopg.connect(url) as conn:
        cache = schema.load_sync(conn, settings.rest_schema_list)
    holder = schema.SchemaHolder(settings.rest_schema_list)
    holder.cache = cache
    service = RestService(settings, None, holder, ClaimsCache(Signer(JWT_SECRET, settings.jwt_issuer)))
    compiled = service.compile_read("GET", path, query.encode(), {})
    return compiled.statement.sql, compiled.statement.params


TRANSACTION_SCRIPT = ["BEGIN READ ONLY;",
                      "select set_config('role', :role, true), set_config('request.jwt.claims', :claims, true);",
                      "{statement};",
                      "COMMIT;"]
SESSION_SCRIPT = ["select set_config('role', :role, false), set_config('request.jwt.claims', :claims, false), "
                  "set_config('default_transaction_read_only', 'on', false);",
                  "{statement};"]


def pgbench(server_port: int, database_name: str, role: str, claims_json: str, sql: str, params: list[object],
            clients: int, seconds: int, shape: list[str]) -> float:
    statement = re.sub(r"\$(\d+)", r":p\1", sql)
    script = [line.replace("{statement}", statement) for line in shape]
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write("\n".join(script) + "\n")
        path = handle.name
    os.chmod(path, 0o644)
    defines = ["-D", f"role={role}", "-D", f"claims={claims_json}"]
    for index, value in enumerate(params, 1):
        defines += ["-D", f"p{index}={value}"]
    command = [str(bin_dir() / "pgbench"), "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
               "-T", str(seconds), "-h", "127.0.0.1", "-p", str(server_port), "-U", "authenticator",
               *defines, "-f", path, database_name]
    try:
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    finally:
        Path(path).unlink(missing_ok=True)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if failed and int(failed.group(1)):
        raise RuntimeError(f"pgbench transactions failed:\n{out}")
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def cpu_seconds(match: str) -> float:
    """CPU time (user + system) of the live processes whose command line contains `match`."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if match not in cmdline:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    clients = int(os.environ.get("BENCH_CLIENTS", "64"))
    seconds = int(os.environ.get("BENCH_SECONDS", "8"))
    with database() as (server, url):
        todo_id = seed(url)
        signer = Signer(JWT_SECRET, "tuskbase")
        now = int(time.time())
        claims = {"sub": str(USER), "role": "authenticated", "aud": "authenticated", "iat": now,
                  "exp": now + 24 * 3600, "iss": "tuskbase"}
        token = signer.sign(claims)
        claims_json = ClaimsCache(signer).verify(token)[1]
        query = f"id=eq.{todo_id}"
        sql, params = api_statement(url, "todos", query)
        print(f"statement: {sql}\nparameters: {params}\nclients: {clients}, {seconds} s per measurement", flush=True)

        rounds = int(os.environ.get("BENCH_ROUNDS", "2"))
        headers = {"apikey": signer.api_key("anon"), "Authorization": f"Bearer {token}"}
        with contextlib.ExitStack() as stack:
            targets = {}
            for workers in (1, 2):
                port = free_port()
                env = api_env(url, port, TUSKBASE_DB_POOL_MAX=str(max(4, min(clients, 32) // workers)),
                              TUSKBASE_DB_POOL_MIN="2")
                base = stack.enter_context(serve(granian_command(port, workers), env, port))
                target = f"{base}/rest/v1/todos?{query}"
                check = httpx.get(target, headers=headers)
                assert check.status_code == 200 and len(check.json()) == 1, check.text
                wrk(target, seconds=2, connections=clients, headers=headers)  # warm-up
                targets[f"api ({workers} worker{'s' if workers > 1 else ''})"] = target
            # Rounds interleave the ceiling and the API so that load from other processes hits both alike;
            # the best of each is reported.
            ceiling_runs: list[float] = []
            strict_runs: list[float] = []
            api_runs: dict[str, list[float]] = {name: [] for name in targets}
            cpu: dict[str, tuple[float, float]] = {}  # per request: (API processes, Postgres backends)
            for _ in range(rounds):
                ceiling_runs.append(pgbench(server.port, "bench", "authenticated", claims_json, sql, params,
                                            clients, seconds, TRANSACTION_SCRIPT))
                strict_runs.append(pgbench(server.port, "bench", "authenticated", claims_json, sql, params,
                                           clients, seconds, SESSION_SCRIPT))
                for name, target in targets.items():
                    port = target.split(":")[2].split("/")[0]
                    api_before, pg_before = cpu_seconds(f"--port {port}"), cpu_seconds("postgres: authenticator bench")
                    rate = wrk(target, seconds=seconds, connections=clients, headers=headers)
                    api_after, pg_after = cpu_seconds(f"--port {port}"), cpu_seconds("postgres: authenticator bench")
                    if rate > max(api_runs[name], default=0):
                        served = rate * seconds
                        cpu[name] = ((api_after - api_before) / served, (pg_after - pg_before) / served)
                    api_runs[name].append(rate)

        ceiling, strict = max(ceiling_runs), max(strict_runs)
        print(f"pgbench, request transaction, {clients} clients: {ceiling:9.0f} tps   (runs: "
              + ", ".join(f"{r:.0f}" for r in ceiling_runs) + ")")
        print(f"pgbench, the API's statements, {clients} clients: {strict:8.0f} tps   (runs: "
              + ", ".join(f"{r:.0f}" for r in strict_runs) + ")")
        for name, runs in api_runs.items():
            rate = max(runs)
            print(f"{name:16s} GET /rest/v1/todos?id=eq.N: {rate:9.0f} req/s   ratio {rate / ceiling:.2f} "
                  f"(transaction), {rate / strict:.2f} (API's statements)"
                  "   (runs: " + ", ".join(f"{r:.0f}" for r in runs) + ")")
        best = max(max(runs) for runs in api_runs.values())
        print(f"best ratio: {best / ceiling:.2f} to the request transaction (goal >= 0.50), "
              f"{best / strict:.2f} to the API's own statements")
        for name, (api_cpu, pg_cpu) in cpu.items():
            print(f"CPU per request, {name}: API processes {api_cpu * 1e6:.0f} us, "
                  f"Postgres backends {pg_cpu * 1e6:.0f} us")


if __name__ == "__main__":
    main()
