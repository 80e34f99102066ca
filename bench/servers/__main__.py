"""Which ASGI server serves Tuskbase faster here: granian against uvicorn (uvloop + httptools).

Each serves the same app on the same database; wrk drives `/health` (no database) and `/ready` (one query
on the pool). The ratio granian/uvicorn decides the server `tuskbase serve` uses.

    python -m bench.servers
"""

from __future__ import annotations

from bench.common import api_env, database, free_port, granian_command, serve, uvicorn_command, wrk


def main() -> None:
    with database() as (_server, url):
        results: dict[str, dict[str, float]] = {}
        for name, command in (("granian", granian_command), ("uvicorn", uvicorn_command)):
            port = free_port()
            with serve(command(port), api_env(url, port), port) as base:
                wrk(f"{base}/health", seconds=2)  # warm-up
                results[name] = {path: wrk(f"{base}{path}") for path in ("/health", "/ready")}
        for path in ("/health", "/ready"):
            g, u = results["granian"][path], results["uvicorn"][path]
            print(f"{path:8s} granian {g:8.0f} req/s   uvicorn {u:8.0f} req/s   granian/uvicorn {g / u:.2f}")


if __name__ == "__main__":
    main()
