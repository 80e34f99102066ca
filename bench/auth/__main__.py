"""Auth credential paths against ceilings measured in the same run, on the same machine.

1. Password sign-in (`POST /auth/v1/token?grant_type=password`) against the argon2id verifications per second
   the same machine does alone with the same parameters and as many threads as the API's default executor:
   sign-in is meant to cost one argon2 verification, so the ratio shows what HTTP, SQL and signing add.
2. Refresh-token rotation (`POST /auth/v1/token?grant_type=refresh_token`) against the same SQL statements run
   by a bare asyncpg loop (same transaction shape, same concurrency, as the auth role): the ratio shows the
   cost of HTTP, JSON and JWT signing over the database work.
3. Access-token verification on the request path (what REST pays per request): a hit of the claims cache (the
   ceiling, what a seen token costs) against a miss: decoding alone, HS256 and ES256 signature checks.

The API runs under granian (1 worker, what `tuskbase serve` uses); an asyncio httpx client drives it from this
process (the same process also runs the ceilings, so the machine's load is alike).

    python -m bench.auth
    BENCH_CLIENTS=16 BENCH_SECONDS=5 python -m bench.auth
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import httpx

from bench.common import JWT_SECRET, api_env, database, free_port, granian_command, serve
from tuskbase.auth import ratelimit, sessions, store, users
from tuskbase.auth.passwords import HASHER
from tuskbase.config import Settings
from tuskbase.tokens import Signer

PASSWORD = "bench-password-0123"


async def _drive(seconds: float, clients: int, step) -> float:
    """Run `step(i)` in `clients` concurrent loops for `seconds`; returns completed steps per second."""
    done = 0
    deadline = time.monotonic() + seconds

    async def loop(i: int) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await step(i)
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(loop(i) for i in range(clients)))
    return done / (time.monotonic() - started)


def argon2_ceiling(seconds: float, threads: int) -> float:
    encoded = HASHER.hash(PASSWORD)
    deadline = time.monotonic() + seconds
    counts = [0] * threads

    def work(i: int) -> None:
        while time.monotonic() < deadline:
            HASHER.verify(encoded, PASSWORD)
            counts[i] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return sum(counts) / (time.monotonic() - started)


async def sign_ins(base: str, anon: str, emails: list[str], seconds: float, clients: int) -> float:
    async with httpx.AsyncClient(base_url=f"{base}/auth/v1", headers={"apikey": anon}, timeout=30) as http:
        async def step(i: int) -> None:
            answer = await http.post("/token?grant_type=password",
                                     json={"email": emails[i % len(emails)], "password": PASSWORD})
            assert answer.status_code == 200, answer.text
        return await _drive(seconds, clients, step)


async def refreshes(base: str, anon: str, tokens: list[str], seconds: float, clients: int) -> float:
    async with httpx.AsyncClient(base_url=f"{base}/auth/v1", headers={"apikey": anon}, timeout=30) as http:
        async def step(i: int) -> None:
            answer = await http.post("/token?grant_type=refresh_token", json={"refresh_token": tokens[i]})
            assert answer.status_code == 200, answer.text
            tokens[i] = answer.json()["refresh_token"]
        return await _drive(seconds, clients, step)


async def refresh_ceiling(settings: Settings, tokens: list[str], seconds: float, clients: int) -> float:
    """The statements of one rotation (rate-limit count, lock, read user, rotate) without HTTP, JSON and JWT."""
    signer = Signer(JWT_SECRET, settings.jwt_issuer)
    pool = await asyncpg.create_pool(settings.database_url.replace("postgres@", "authenticator@"),
                                     min_size=clients, max_size=clients)
    try:
        async def step(i: int) -> None:
            async with store.transaction(pool) as conn:
                await conn.fetch(ratelimit.HIT, ["ip:refresh"], ["127.0.0.1"], 300)
                row = await conn.fetchrow(sessions.SELECT_REFRESH_TOKEN, sessions.hash_token(tokens[i]))
                await users.by_id(conn, row["user_id"])
                child = sessions.child_token(signer, tokens[i])
                await conn.execute(sessions.ROTATE, row["id"], sessions.hash_token(child), row["session_id"],
                                   row["user_id"], None, None, None, None, None)
                tokens[i] = child
        return await _drive(seconds, clients, step)
    finally:
        await pool.close()


async def sessions_for(base: str, anon: str, emails: list[str], count: int) -> list[str]:
    async with httpx.AsyncClient(base_url=f"{base}/auth/v1", headers={"apikey": anon}, timeout=30) as http:
        tokens = []
        for i in range(count):
            answer = await http.post("/token?grant_type=password",
                                     json={"email": emails[i % len(emails)], "password": PASSWORD})
            tokens.append(answer.json()["refresh_token"])
        return tokens


def main() -> None:
    clients = int(os.environ.get("BENCH_CLIENTS", "16"))
    seconds = float(os.environ.get("BENCH_SECONDS", "6"))
    threads = min(32, (os.cpu_count() or 1) + 4)  # the API's default executor, where argon2 runs
    with database() as (_server, url):
        port = free_port()
        env = api_env(url, port, TUSKBASE_AUTH_EMAIL_AUTOCONFIRM="true", TUSKBASE_AUTH_RATE_LIMIT_PER_IP="100000000",
                      TUSKBASE_AUTH_RATE_LIMIT_PER_IDENTIFIER="100000000", TUSKBASE_DB_POOL_MAX=str(clients),
                      TUSKBASE_AUTH_REFRESH_REUSE_INTERVAL="0")
        signer = Signer(JWT_SECRET, "tuskbase")
        anon, service = signer.api_key("anon"), signer.api_key("service_role")
        emails = [f"user{i}@bench.example" for i in range(clients)]
        settings = Settings(database_url=url, jwt_secret=JWT_SECRET)
        with serve(granian_command(port, 1), env, port) as base:
            for email in emails:
                created = httpx.post(f"{base}/auth/v1/admin/users", headers={
                    "apikey": service, "Authorization": f"Bearer {service}"},
                    json={"email": email, "password": PASSWORD, "email_confirm": True})
                assert created.status_code == 200, created.text
            # Ceilings are measured before and after the API run (the idle server stays up) and the higher one
            # is used, so a burst of load from elsewhere on the machine cannot flatter the ratio.
            argon2_rates = [argon2_ceiling(seconds, threads)]
            asyncio.run(sign_ins(base, anon, emails, 1, clients))  # warm-up
            signin_rate = asyncio.run(sign_ins(base, anon, emails, seconds, clients))
            argon2_rates.append(argon2_ceiling(seconds, threads))
            sql_rates = [asyncio.run(refresh_ceiling(settings, asyncio.run(sessions_for_db(settings, clients)),
                                                     seconds, clients))]
            tokens = asyncio.run(sessions_for(base, anon, emails, clients))
            asyncio.run(refreshes(base, anon, tokens, 1, clients))  # warm-up
            refresh_rate = asyncio.run(refreshes(base, anon, tokens, seconds, clients))
            sql_rates.append(asyncio.run(refresh_ceiling(settings, asyncio.run(sessions_for_db(settings, clients)),
                                                         seconds, clients)))
    argon2_rate, ceiling = max(argon2_rates), max(sql_rates)
    print(f"clients: {clients}, {seconds:.0f} s per measurement, argon2id t={HASHER.time_cost} "
          f"m={HASHER.memory_cost} KiB p={HASHER.parallelism}")
    print(f"argon2id verify alone ({threads} threads):     {argon2_rate:8.1f} /s  (before/after: "
          f"{argon2_rates[0]:.1f}/{argon2_rates[1]:.1f})")
    print(f"password sign-in over HTTP:             {signin_rate:8.1f} /s  ratio {signin_rate / argon2_rate:.2f}")
    print(f"refresh SQL alone (asyncpg, {clients} clients): {ceiling:8.1f} /s  (before/after: "
          f"{sql_rates[0]:.1f}/{sql_rates[1]:.1f})")
    print(f"refresh rotation over HTTP:             {refresh_rate:8.1f} /s  ratio {refresh_rate / ceiling:.2f}")
    rates = verification_rates(seconds)
    ceiling = rates.pop("claims cache hit")
    print(f"claims cache hit (ceiling):             {ceiling:8.0f} /s")
    for name, value in rates.items():
        print(f"{name + ':':39s} {value:8.0f} /s  ratio {value / ceiling:.2f}")


def verification_rates(seconds: float) -> dict[str, float]:
    """Tokens per second: a claims-cache hit, decoding alone, and the signature check of each algorithm."""
    import tempfile
    from pathlib import Path

    import jwt

    from tuskbase.tokens import ClaimsCache

    es = Signer.from_settings(Settings(jwt_secret=JWT_SECRET, jwt_algorithm="ES256",
                                       data_dir=Path(tempfile.mkdtemp(prefix="tuskbase-bench-key-"))))
    hs = Signer(JWT_SECRET, "tuskbase")
    claims = {"sub": "00000000-0000-4000-8000-000000000001", "role": "authenticated", "aud": "authenticated",
              "exp": int(time.time()) + 3600, "session_id": "00000000-0000-4000-8000-000000000002"}
    es_token, hs_token = es.sign(claims), hs.sign(claims)
    cache = ClaimsCache(hs)
    cache.verify(hs_token)

    def rate(check) -> float:
        done, deadline = 0, time.monotonic() + seconds / 4
        started = time.monotonic()
        while time.monotonic() < deadline:
            for _ in range(100):
                check()
            done += 100
        return done / (time.monotonic() - started)

    return {"claims cache hit": rate(lambda: cache.verify(hs_token)),
            "decode only (no check)": rate(lambda: jwt.decode(hs_token, options={"verify_signature": False})),
            "HS256 verify": rate(lambda: hs.verify(hs_token)),
            "ES256 verify": rate(lambda: es.verify(es_token))}


async def sessions_for_db(settings: Settings, count: int) -> list[str]:
    """Fresh sessions made directly in the database for the SQL-only ceiling."""
    from tuskbase.auth.sessions import Device, create

    pool = await asyncpg.create_pool(settings.database_url.replace("postgres@", "authenticator@"), min_size=1,
                                     max_size=2)
    try:
        tokens = []
        async with store.transaction(pool) as conn:
            ids = [r["id"] for r in await conn.fetch("select id from auth.users order by created_at")]
            for i in range(count):
                tokens.append((await create(conn, ids[i % len(ids)], "password", Device()))[1])
        return tokens
    finally:
        await pool.close()


if __name__ == "__main__":
    main()
