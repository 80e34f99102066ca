"""The API's route table (`app.SERVICES`, `app.route_table`): every route belongs to a service and lives under its
prefix, every fast path has the Litestar route it falls back on, and ARCHITECTURE.md shows the table as it is
(`.venv/bin/python -m tests.platform.test_route_table --write` rewrites it there)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tuskbase.app import SERVICES, Dispatcher, create_app, route_table
from tuskbase.config import Settings

ARCHITECTURE = Path(__file__).resolve().parents[2] / "ARCHITECTURE.md"
APP_ROUTES = {"/health", "/ready", "/metrics"}


def app(tmp_path):
    return create_app(Settings(jwt_secret="route-table-test-secret-of-enough-length", data_dir=tmp_path))


def markdown(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| service | methods | path | handlers |", "|---|---|---|---|"]
    lines += [f"| {service} | {methods} | `{path}` | {names} |" for service, methods, path, names in rows]
    return "\n".join(lines)


def test_every_route_lives_under_its_services_prefix(tmp_path):
    rows = route_table(app(tmp_path))
    assert {path for service, _m, path, _n in rows if service == "app"} == APP_ROUTES
    for service, _methods, path, _names in rows:
        if service != "app":
            assert path == f"/{service}/v1" or path.startswith(f"/{service}/v1/"), (service, path)
    assert {row[0] for row in rows} >= {"app", "auth", "rest", "sync"}


def test_every_fast_path_falls_back_on_a_route_and_one_dispatcher_serves_them(tmp_path):
    api = app(tmp_path)
    paths = {path for _s, _m, path, _n in route_table(api)}
    fast = [fast for service in SERVICES for fast in service.fast]
    assert {f.path for f in fast} == {"/rest/v1", "/sync/v1/pull"}
    assert all(f.path in paths for f in fast)
    chain = [api.asgi_handler]  # the observer, the body deadline, then the dispatcher: each holds the next
    while hasattr(chain[-1], "app") or hasattr(chain[-1], "router"):
        chain.append(getattr(chain[-1], "app", None) or chain[-1].router)
    assert [type(link) for link in chain].count(Dispatcher) == 1  # one dispatcher, not one per service
    rest, pull = sorted(fast, key=lambda f: f.path)
    assert rest.matches("/rest/v1", "GET") and rest.matches("/rest/v1/todos", "PATCH")
    assert not rest.matches("/rest/v10", "GET")
    assert pull.matches("/sync/v1/pull", "POST") and not pull.matches("/sync/v1/pull", "GET")


def test_architecture_md_shows_the_route_table_as_it_is(tmp_path):
    table = markdown(route_table(app(tmp_path)))
    assert table in ARCHITECTURE.read_text(), "regenerate the table in ARCHITECTURE.md:\n" + table


def write() -> None:
    """Replace the table in ARCHITECTURE.md (the lines from its header row to the next blank line)."""
    text = ARCHITECTURE.read_text()
    start = text.index("| service | methods | path | handlers |")
    end = text.index("\n\n", start)
    ARCHITECTURE.write_text(text[:start] + markdown(route_table(app(Path(tempfile.mkdtemp())))) + text[end:])


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    write()
