"""Row-level security policies kept as SQL files, one per table: `<schema>.<table>.sql`.

`apply` makes the database match the files in one transaction: for every table with a file, the policies
the database has are dropped and the file is run, so a changed policy is replaced and a policy removed from
the file disappears. Running it twice leaves the same state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

PLATFORM_POLICIES = Path(__file__).resolve().parents[2] / "policies"
EXISTING_POLICIES = "select policyname from pg_policies where schemaname = %s and tablename = %s"


class PolicyError(RuntimeError):
    """A policy file is malformed or failed to apply; the message carries file:line."""


@dataclass(frozen=True)
class PolicyFile:
    path: Path
    schema: str
    table: str

    @classmethod
    def from_path(cls, path: Path) -> PolicyFile:
        parts = path.name.removesuffix(".sql").split(".")
        if len(parts) != 2 or not all(parts):
            raise PolicyError(f"{path}:1: policy files are named <schema>.<table>.sql")
        return cls(path, parts[0], parts[1])

    @property
    def sql(self) -> str:
        return self.path.read_text()


def folders(app_dir: Path | None) -> list[Path]:
    found = [PLATFORM_POLICIES]
    if app_dir is not None:
        found.append(app_dir / "policies")
    return [folder for folder in found if folder.is_dir()]


def discover(app_dir: Path | None) -> list[PolicyFile]:
    return [PolicyFile.from_path(path) for folder in folders(app_dir) for path in sorted(folder.glob("*.sql"))]


def apply(url: str, app_dir: Path | None, progress: Callable[[str], None] = lambda _line: None) -> int:
    """Apply every policy file in one transaction; returns the number of files applied."""
    files = discover(app_dir)
    with psycopg.connect(url) as conn, conn.transaction():
        for policy_file in files:
            _replace_policies(conn, policy_file)
    progress(f"policies applied from {len(files)} files")
    return len(files)


def _replace_policies(conn: psycopg.Connection, policy_file: PolicyFile) -> None:
    table = sql.Identifier(policy_file.schema, policy_file.table)
    for (name,) in conn.execute(EXISTING_POLICIES, (policy_file.schema, policy_file.table)).fetchall():
        conn.execute(sql.SQL("drop policy {} on {}").format(sql.Identifier(name), table))
    try:
        conn.execute(policy_file.sql.encode())
    except psycopg.Error as error:
        line = _error_line(policy_file.sql, error)
        raise PolicyError(f"{policy_file.path}:{line}: {error.diag.message_primary or error}") from None


def _error_line(text: str, error: psycopg.Error) -> int:
    position = error.diag.statement_position
    if not position:
        return 1
    return text[: int(position)].count("\n") + 1
