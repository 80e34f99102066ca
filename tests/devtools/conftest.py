"""Fixtures of the developer-command tests: the `tuskbase` command run as a user runs it, and the TypeScript
checker (tests/devtools/node: typescript + @supabase/supabase-js from npm, lock file committed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"


def run_tuskbase(*args: str, env: dict[str, str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tuskbase.cli", *args], env=env, input=input, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def cli_env(settings, tmp_path) -> dict[str, str]:
    """The environment of a `tuskbase` command aimed at the test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSKBASE_")}
    env.update(TUSKBASE_DATABASE_URL=settings.database_url, TUSKBASE_DATA_DIR=str(tmp_path / "data"),
               TUSKBASE_JWT_SECRET=settings.jwt_secret)
    if settings.app_dir is not None:
        env["TUSKBASE_APP_DIR"] = str(settings.app_dir)
    return env


def _install_checker() -> None:
    """`make test` installs the checker (npm ci); a bare `pytest` does it here the first time."""
    if (NODE_DIR / "node_modules" / "typescript" / "bin" / "tsc").is_file():
        return
    npm = shutil.which("npm")
    assert npm, "npm is needed to install the TypeScript checker (tests/devtools/node)"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True)


@pytest.fixture(scope="session")
def tsc() -> list[str]:
    node = shutil.which("node")
    assert node, "node is needed to type-check the generated TypeScript"
    _install_checker()
    return [node, str(NODE_DIR / "node_modules" / "typescript" / "bin" / "tsc")]
