"""The serving settings: validated at start, and turned into the granian options `tuskbase serve` runs with."""

from __future__ import annotations

import pytest

from tuskbase.cli import server_command
from tuskbase.config import SettingsError, load

CASES = [
    ({"TUSKBASE_HTTP_VERSION": "3"}, "TUSKBASE_HTTP_VERSION must be `1`, `2` or `auto`"),
    ({"TUSKBASE_HEADER_READ_TIMEOUT_S": "soon"}, "TUSKBASE_HEADER_READ_TIMEOUT_S must be a number"),
    ({"TUSKBASE_HEADER_READ_TIMEOUT_S": "0"}, "TUSKBASE_HEADER_READ_TIMEOUT_S must be from 0.1 to 60"),
    ({"TUSKBASE_BODY_READ_TIMEOUT_S": "0"}, "TUSKBASE_BODY_READ_TIMEOUT_S must be at least 0.1"),
    ({"TUSKBASE_MAX_CONNECTIONS": "100", "TUSKBASE_CONNECTION_HEADROOM": "100"},
     "TUSKBASE_CONNECTION_HEADROOM must be at least 1 and less than MAX_CONNECTIONS"),
    ({"TUSKBASE_BACKLOG": "10"}, "TUSKBASE_BACKLOG must be at least 128"),
    ({"TUSKBASE_METRICS_ACCESS": "private"}, "TUSKBASE_METRICS_ACCESS must be `public`, `token` or `off`"),
    ({"TUSKBASE_METRICS_ACCESS": "token"}, "TUSKBASE_METRICS_TOKEN must be at least 16 characters"),
]


@pytest.mark.parametrize(("environ", "message"), CASES)
def test_bad_serving_value_names_the_variable(environ, message):
    with pytest.raises(SettingsError) as error:
        load(environ)
    assert str(error.value).startswith(message)


def option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def test_granian_runs_http1_with_the_timeouts_and_the_cap():
    command = server_command(load({"TUSKBASE_HEADER_READ_TIMEOUT_S": "2.5", "TUSKBASE_MAX_CONNECTIONS": "500",
                                   "TUSKBASE_CONNECTION_HEADROOM": "50", "TUSKBASE_BACKLOG": "256"}))
    assert option(command, "--http") == "1"
    assert option(command, "--http1-header-read-timeout") == "2500"
    assert option(command, "--backpressure") == "500"
    assert option(command, "--backlog") == "256"
    assert "--http1-keep-alive" in command
    assert "--no-http1-keep-alive" in server_command(load({"TUSKBASE_KEEPALIVE": "false"}))
    http2 = server_command(load({"TUSKBASE_HTTP_VERSION": "2"}))
    assert option(http2, "--http") == "2" and "--http1-header-read-timeout" not in http2
