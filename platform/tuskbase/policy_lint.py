"""`tuskbase policies lint`: static checks of the policy files (and the migrations they protect), with pglast.

Rules (each message is `file:line: rule: text`, and any finding makes the exit status 1):
- `other-table`      a statement in `<schema>.<table>.sql` touches another table (`apply` refuses the file)
- `not-policy`       a statement that is not ENABLE RLS / CREATE POLICY / GRANT / COMMENT (belongs in a migration)
- `no-rls`           a table created in an exposed schema never gets ENABLE ROW LEVEL SECURITY
- `anon-write-true`  a permissive INSERT/UPDATE/DELETE/ALL policy for anon (or PUBLIC) with USING/WITH CHECK (true)
- `update-no-check`  an UPDATE policy without WITH CHECK (a row could be moved out of the user's reach)
- `definer-search-path`  a SECURITY DEFINER function without a fixed `SET search_path`
- `syntax`           a file pglast cannot parse
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import AlterTableType, ObjectType
from pglast.parser import ParseError

from tuskbase import migrate, policies

RLS_SUBTYPES = {AlterTableType.AT_EnableRowSecurity, AlterTableType.AT_ForceRowSecurity,
                AlterTableType.AT_DisableRowSecurity, AlterTableType.AT_NoForceRowSecurity}
WRITE_COMMANDS = {"insert", "update", "delete", "all"}


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.message}"


@dataclass
class Statement:
    path: Path
    line: int
    node: Any


def statements(path: Path, text: str | None = None) -> list[Statement]:
    """The statements of a file with the line each starts on (comments and blank lines skipped)."""
    text = path.read_text() if text is None else text
    found = []
    encoded = text.encode()
    for raw in parse_sql(text):
        # pglast locations are byte offsets into the UTF-8 text.
        start = raw.stmt_location or 0
        found.append(Statement(path, _first_code_line(encoded, start), raw.stmt))
    return found


def _first_code_line(encoded: bytes, start: int) -> int:
    index, length = start, len(encoded)
    while index < length:
        if encoded[index:index + 1].isspace():
            index += 1
        elif encoded[index:index + 2] == b"--":
            end = encoded.find(b"\n", index)
            index = length if end < 0 else end + 1
        else:
            break
    return encoded[:index].count(b"\n") + 1


def _name(relation: Any, default_schema: str) -> tuple[str, str]:
    return (relation.schemaname or default_schema, relation.relname)


def _targets(node: Any, default_schema: str) -> tuple[list[tuple[str, str]], bool]:
    """(tables the statement names, whether its kind belongs in a policy file).

    Policy statements: ENABLE/FORCE ROW LEVEL SECURITY, CREATE/ALTER POLICY, GRANT/REVOKE (on the table, or on
    its sequences, functions or schema) and COMMENT. Anything else is reported (`not-policy`) but its tables are
    still checked against the file's.
    """
    if isinstance(node, ast.AlterTableStmt):
        rls_only = all(getattr(c, "subtype", None) in RLS_SUBTYPES for c in node.cmds or ())
        return [_name(node.relation, default_schema)], rls_only
    if isinstance(node, ast.CreatePolicyStmt | ast.AlterPolicyStmt):
        return [_name(node.table, default_schema)], True
    if isinstance(node, ast.GrantStmt):
        if node.objtype == ObjectType.OBJECT_TABLE:
            return [_name(o, default_schema) for o in node.objects or ()], True
        return [], True
    if isinstance(node, ast.CommentStmt):
        if node.objtype == ObjectType.OBJECT_POLICY:
            parts = [s.sval for s in node.object]
            table = parts[:-1]
            return [(table[0], table[1]) if len(table) == 2 else (default_schema, table[-1])], True
        if node.objtype == ObjectType.OBJECT_TABLE:
            parts = [s.sval for s in node.object]
            return [(parts[0], parts[1]) if len(parts) == 2 else (default_schema, parts[-1])], True
        return [], True
    if isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_TABLE:
        found = []
        for obj in node.objects or ():
            parts = [s.sval for s in obj]
            found.append((parts[0], parts[1]) if len(parts) == 2 else (default_schema, parts[-1]))
        return found, False
    return [_name(r, default_schema) for r in _range_vars(node)], False


def _range_vars(node: Any) -> list[Any]:
    """Every table reference (RangeVar) inside a statement."""
    found: list[Any] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.RangeVar):
            found.append(current)
        elif isinstance(current, ast.Node):
            stack.extend(value for value in (getattr(current, name) for name in current) if value is not None)
        elif isinstance(current, tuple | list):
            stack.extend(current)
    return found


def _is_true(expr: Any) -> bool:
    return isinstance(expr, ast.A_Const) and isinstance(expr.val, ast.Boolean) and bool(expr.val.boolval)


def _roles(node: Any) -> set[str]:
    names = set()
    for role in node.roles or ():
        names.add("public" if role.rolename is None else role.rolename)
    return names or {"public"}


def check_policy_statement(st: Statement, table: tuple[str, str]) -> list[Finding]:
    findings = []
    where = str(st.path)
    targets, belongs = _targets(st.node, table[0])
    if not belongs:
        findings.append(Finding(where, st.line, "not-policy",
                                f"{type(st.node).__name__} does not belong in a policy file (only ENABLE ROW LEVEL "
                                "SECURITY, CREATE POLICY, GRANT / REVOKE and COMMENT): put it in a migration"))
    for target in sorted(set(targets)):
        if target != table:
            findings.append(Finding(where, st.line, "other-table",
                                    f"touches {target[0]}.{target[1]}, but this file is for {table[0]}.{table[1]}"))
    findings.extend(check_policy(st))
    return findings


def check_policy(st: Statement) -> list[Finding]:
    node = st.node
    if not isinstance(node, ast.CreatePolicyStmt):
        return []
    findings = []
    where, name = str(st.path), node.policy_name
    command = (node.cmd_name or "all").lower()
    roles = _roles(node)
    if node.permissive and command in WRITE_COMMANDS and roles & {"anon", "public"} \
            and (_is_true(node.qual) or _is_true(node.with_check)):
        findings.append(Finding(where, st.line, "anon-write-true",
                                f"policy {name} lets anonymous callers {command.upper()} any row (true)"))
    if command == "update" and node.with_check is None:
        findings.append(Finding(where, st.line, "update-no-check",
                                f"UPDATE policy {name} has no WITH CHECK: rows could be changed into rows the "
                                "user may not have written"))
    return findings


def check_function(st: Statement) -> list[Finding]:
    node = st.node
    if not isinstance(node, ast.CreateFunctionStmt):
        return []
    definer = fixed_path = False
    for option in node.options or ():
        if option.defname == "security" and isinstance(option.arg, ast.Boolean) and option.arg.boolval:
            definer = True
        if option.defname == "set" and getattr(option.arg, "name", None) == "search_path":
            fixed_path = True
    if definer and not fixed_path:
        name = ".".join(s.sval for s in node.funcname)
        return [Finding(str(st.path), st.line, "definer-search-path",
                        f"SECURITY DEFINER function {name} has no fixed search_path (SET search_path = '')")]
    return []


def lint(policy_files: Iterable[Path], migration_files: Iterable[Path], exposed: Iterable[str]) -> list[Finding]:
    findings: list[Finding] = []
    exposed = set(exposed)
    created: dict[tuple[str, str], tuple[Path, int]] = {}
    protected: set[tuple[str, str]] = set()
    parsed: list[tuple[Path, list[Statement]]] = []
    for path in migration_files:
        try:
            parsed.append((path, statements(path)))
        except ParseError as error:
            findings.append(Finding(str(path), _error_line(path, error), "syntax", str(error)))
    for _path, found in parsed:
        for st in found:
            findings.extend(check_function(st))
            findings.extend(check_policy(st))
            _track_tables(st, created, protected)
    for path in policy_files:
        try:
            policy_file = policies.PolicyFile.from_path(path)
        except policies.PolicyError as error:
            findings.append(Finding(str(path), 1, "other-table", str(error).split(": ", 1)[-1]))
            continue
        try:
            found = statements(path)
        except ParseError as error:
            findings.append(Finding(str(path), _error_line(path, error), "syntax", str(error)))
            continue
        for st in found:
            findings.extend(check_policy_statement(st, (policy_file.schema, policy_file.table)))
            findings.extend(check_function(st))
            _track_tables(st, created, protected)
    for table, (path, line) in created.items():
        if table[0] in exposed and table not in protected:
            findings.append(Finding(str(path), line, "no-rls",
                                    f"table {table[0]}.{table[1]} is exposed over REST without ROW LEVEL SECURITY "
                                    f"(add policies/{table[0]}.{table[1]}.sql with ENABLE ROW LEVEL SECURITY)"))
    return sorted(set(findings))


def _track_tables(st: Statement, created: dict[tuple[str, str], tuple[Path, int]],
                  protected: set[tuple[str, str]]) -> None:
    node = st.node
    if isinstance(node, ast.CreateStmt):
        created[_name(node.relation, "public")] = (st.path, st.line)
    elif isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_TABLE:
        for obj in node.objects or ():
            parts = [s.sval for s in obj]
            key = (parts[0], parts[1]) if len(parts) == 2 else ("public", parts[-1])
            created.pop(key, None)
            protected.discard(key)
    elif isinstance(node, ast.AlterTableStmt):
        for cmd in node.cmds or ():
            if getattr(cmd, "subtype", None) == AlterTableType.AT_EnableRowSecurity:
                protected.add(_name(node.relation, "public"))
            elif getattr(cmd, "subtype", None) == AlterTableType.AT_DisableRowSecurity:
                protected.discard(_name(node.relation, "public"))


def _error_line(path: Path, error: ParseError) -> int:
    location = getattr(error, "location", None)
    if not location:
        return 1
    return path.read_bytes()[:location].count(b"\n") + 1


def default_files(app_dir: Path | None) -> tuple[list[Path], list[Path]]:
    policy_files = [f.path for f in policies.discover(app_dir)]
    migration_files = [m.path for m in migrate.all_migrations(app_dir)]
    return policy_files, migration_files


def files_of(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Split given files / folders into policy files and migrations (a folder named migrations, or NNNN_*)."""
    policy_files, migration_files = [], []
    for path in paths:
        found = sorted(path.rglob("*.sql")) if path.is_dir() else [path]
        for file in found:
            if migrate.NAME_PATTERN.match(file.name):
                migration_files.append(file)
            else:
                policy_files.append(file)
    return policy_files, migration_files


def lint_main(settings: Any, args: argparse.Namespace) -> int:
    paths = list(getattr(args, "paths", None) or [])
    policy_files, migration_files = files_of(paths) if paths else default_files(settings.app_dir)
    findings = lint(policy_files, migration_files, settings.rest_schema_list)
    for finding in findings:
        print(finding)
    checked = len(policy_files) + len(migration_files)
    if findings:
        print(f"tuskbase: {len(findings)} problem(s) in {checked} files")
        return 1
    print(f"tuskbase: policies lint: {checked} files, no problems")
    return 0
