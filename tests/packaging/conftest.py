"""Fixtures of the packaging tests; the helpers are in support.py."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.skip("Debian's docker-compose is not installed (tests/packaging/install-tools.sh needs root and apt)")
    return found
