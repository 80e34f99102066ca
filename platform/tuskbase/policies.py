"""Row-level security policies kept as SQL files, one per table: `<schema>.<table>.sql`.

`apply` makes the database match the files in one transaction. For each file, inside a savepoint, the
table's policies are dropped and the file is run; the table's RLS state (flags, policies as Postgres deparses
them, grants) is compared before and after. Unchanged: the savepoint is rolled back, so a second run changes
nothing at all (no catalog write, no schema-reload notification). Changed: the difference is the plan
(`+ create`, `- drop`, `~ replace`, grants, RLS flags). `dry_run` prints the plan and rolls everything back.

Before running anything, each file is parsed with pglast and must hold only statements for its own table
(the same rule `tuskbase policies lint` reports as `other-table`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from tuskbase.migrate import platform_folder

PLATFORM_POLICIES = platform_folder("policies")
EXISTING_POLICIES = "select policyname from pg_policies where schemaname = %s and tablename = %s"
STATE = """
select c.relrowsecurity, c.relforcerowsecurity, coalesce(c.relacl::text[], '{}'),
  coalesce((select json_object_agg(p.policyname, json_build_array(p.permissive, p.roles, p.cmd, p.qual, p.with_check)
                                    order by p.policyname)
            from pg_policies p where p.schemaname = n.nspname and p.tablename = c.relname), '{}')::text
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and c.relname = %s
"""


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


@dataclass
class Plan:
    """What `apply` changed (or, with dry_run, would change), one line per change."""

    lines: list[str] = field(default_factory=list)
    files: int = 0
    changed_tables: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changed_tables)


def folders(app_dir: Path | None) -> list[Path]:
    found = [PLATFORM_POLICIES]
    if app_dir is not None:
        found.append(app_dir / "policies")
    return [folder for folder in found if folder.is_dir()]


def discover(app_dir: Path | None, paths: Iterable[Path] | None = None) -> list[PolicyFile]:
    if paths:
        found = []
        for path in paths:
            found.extend(sorted(path.glob("*.sql")) if path.is_dir() else [path])
        return [PolicyFile.from_path(path) for path in found]
    return [PolicyFile.from_path(path) for folder in folders(app_dir) for path in sorted(folder.glob("*.sql"))]


def apply(url: str, app_dir: Path | None, progress: Callable[[str], None] = lambda _line: None, *,
          dry_run: bool = False, paths: Iterable[Path] | None = None) -> int:
    """Apply every policy file in one transaction; returns the number of files read."""
    return apply_plan(url, app_dir, progress, dry_run=dry_run, paths=paths).files


def apply_plan(url: str, app_dir: Path | None, progress: Callable[[str], None] = lambda _line: None, *,
               dry_run: bool = False, paths: Iterable[Path] | None = None) -> Plan:
    files = discover(app_dir, paths)
    for policy_file in files:
        _check_targets(policy_file)
    plan = Plan(files=len(files))
    with psycopg.connect(url) as conn, conn.transaction(force_rollback=dry_run):
        for policy_file in files:
            _apply_file_guarded(conn, policy_file, plan)
    verb = "would change" if dry_run else "changed"
    for line in plan.lines:
        progress(line)
    if plan.changed:
        progress(f"policies: {verb} {len(plan.changed_tables)} of {len(files)} tables"
                 + (" (dry run, nothing applied)" if dry_run else ""))
    else:
        progress(f"policies: {len(files)} files, nothing to change")
    return plan


@dataclass(frozen=True)
class TableState:
    """A table's RLS state, normalized so that equal states compare equal whatever order the catalog returns
    them in: a dropped and re-created policy lands elsewhere in pg_policy, and an ACL re-granted may list its
    entries in another order."""

    rls: bool
    force_rls: bool
    grants: frozenset[str]
    policies: dict[str, tuple[object, ...]]

    @classmethod
    def from_row(cls, row: tuple[object, ...]) -> TableState:
        rls, force, acl, policies_json = row
        found = {name: tuple(tuple(v) if isinstance(v, list) else v for v in fields)
                 for name, fields in json.loads(str(policies_json)).items()}
        return cls(bool(rls), bool(force), frozenset(acl or ()), dict(sorted(found.items())))


# The fields of a pg_policies row as STATE lists them, named as `create policy` spells them.
POLICY_FIELDS = ("as", "to", "for", "using", "with check")


def _state(conn: psycopg.Connection, policy_file: PolicyFile) -> TableState | None:
    row = conn.execute(STATE, (policy_file.schema, policy_file.table)).fetchone()
    return None if row is None else TableState.from_row(row)


def _apply_file(conn: psycopg.Connection, policy_file: PolicyFile, plan: Plan) -> None:
    before = _state(conn, policy_file)
    if before is None:
        raise PolicyError(f"{policy_file.path}:1: table {policy_file.schema}.{policy_file.table} does not exist")
    savepoint = conn.transaction()
    with savepoint:
        _replace_policies(conn, policy_file)
        after = _state(conn, policy_file)
        assert after is not None
        if after == before:
            raise _Unchanged
    name = f"{policy_file.schema}.{policy_file.table}"
    plan.changed_tables.append(name)
    plan.lines.extend(_differences(name, before, after))


def _differences(name: str, before: TableState, after: TableState) -> list[str]:
    """One line per difference, each saying what it is (a changed policy: which clause, from what to what)."""
    lines = []
    for policy in sorted(set(before.policies) | set(after.policies)):
        if policy not in before.policies:
            lines.append(f"+ create policy {policy} on {name}: {_describe(after.policies[policy])}")
        elif policy not in after.policies:
            lines.append(f"- drop policy {policy} on {name}")
        elif before.policies[policy] != after.policies[policy]:
            pairs = zip(POLICY_FIELDS, before.policies[policy], after.policies[policy], strict=True)
            changes = [f"{label} {_clause(label, old)} -> {_clause(label, new)}"
                       for label, old, new in pairs if old != new]
            lines.append(f"~ replace policy {policy} on {name}: {'; '.join(changes)}")
    if before.rls != after.rls:
        lines.append(f"{'+ enable' if after.rls else '- disable'} row level security on {name}")
    if before.force_rls != after.force_rls:
        lines.append(f"{'+ force' if after.force_rls else '- no force'} row level security on {name}")
    for grant in sorted(after.grants - before.grants):
        lines.append(f"+ grant {grant} on {name}")
    for grant in sorted(before.grants - after.grants):
        lines.append(f"- grant {grant} on {name}")
    return lines


def _describe(fields: tuple[object, ...]) -> str:
    pairs = zip(POLICY_FIELDS, fields, strict=True)
    return " ".join(f"{label} {_clause(label, value)}" for label, value in pairs if value is not None)


def _clause(label: str, value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    text = " ".join(str(value).split())  # one line per difference, whatever the deparsed layout
    return f"({text})" if label in ("using", "with check") else text


class _Unchanged(Exception):
    """Rolls the savepoint of a file whose application would change nothing."""


def _apply_file_guarded(conn: psycopg.Connection, policy_file: PolicyFile, plan: Plan) -> None:
    with contextlib.suppress(_Unchanged):
        _apply_file(conn, policy_file, plan)


def _check_targets(policy_file: PolicyFile) -> None:
    from pglast.parser import ParseError

    from tuskbase.policy_lint import check_policy_statement, statements

    try:
        found = statements(policy_file.path)
    except ParseError as error:
        raise PolicyError(f"{policy_file.path}:1: {error}") from None
    for st in found:
        for finding in check_policy_statement(st, (policy_file.schema, policy_file.table)):
            if finding.rule == "other-table":
                raise PolicyError(str(finding))


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
