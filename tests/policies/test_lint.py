"""`policies lint`: each rule found with file:line, a clean app passes, and the command's exit status."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TODO_APP
from tuskbase import cli
from tuskbase.policy_lint import lint

CASES = [
    # rule, file name, text, line of the finding
    ("other-table", "public.todos.sql",
     "alter table public.todos enable row level security;\n\ncreate policy p on public.lists for select\n"
     "  to authenticated using (true);\n", 3),
    ("other-table", "public.todos.sql",
     "alter table public.todos enable row level security;\ngrant select on public.todos, public.lists to anon;\n", 2),
    ("not-policy", "public.todos.sql",
     "alter table public.todos enable row level security;\n-- comment\ndrop table public.todos;\n", 3),
    ("other-table", "public.todos.sql",
     "alter table public.todos enable row level security;\n"
     "create policy p on public.todos for select to authenticated\n"
     "  using (exists (select 1 from public.lists l where l.id = list_id));\n"  # reading another table is fine
     "comment on table public.lists is 'x';\n", 4),
    ("anon-write-true", "public.todos.sql",
     "alter table public.todos enable row level security;\n"
     "create policy open on public.todos for insert to anon with check (true);\n", 2),
    ("anon-write-true", "public.todos.sql",
     "alter table public.todos enable row level security;\n"
     "create policy open on public.todos using (true);\n", 2),
    ("update-no-check", "public.todos.sql",
     "alter table public.todos enable row level security;\n\n\n"
     "create policy upd on public.todos for update to authenticated using (created_by = auth.uid());\n", 4),
    ("definer-search-path", "0005_fn.sql",
     "create table public.t (id int);\nalter table public.t enable row level security;\n"
     "create function public.f() returns int language sql security definer as $$ select 1 $$;\n", 3),
    ("no-rls", "0005_table.sql", "-- a table\ncreate table public.open_table (id int);\n", 2),
    ("syntax", "public.todos.sql", "alter table public.todos enable row level securty;\n", 1),
]


@pytest.mark.parametrize(("rule", "name", "text", "line"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_rule_reports_file_and_line(tmp_path, rule, name, text, line):
    path = tmp_path / name
    path.write_text(text)
    is_migration = name[0].isdigit()
    findings = lint([] if is_migration else [path], [path] if is_migration else [], ["public"])
    assert [(f.rule, f.line) for f in findings] == [(rule, line)], [str(f) for f in findings]
    assert str(findings[0]).startswith(f"{path}:{line}: {rule}: ")


def test_safe_patterns_pass(tmp_path):
    migration = tmp_path / "0001_ok.sql"
    migration.write_text(
        "create table private_stuff.t (id int);\n"  # not an exposed schema
        "create table public.u (id int);\n"
        "create function public.g() returns int language sql security definer set search_path = '' as $$ select 1 $$;\n"
        "create table public.gone (id int);\ndrop table public.gone;\n")
    policy = tmp_path / "public.u.sql"
    policy.write_text(
        "alter table public.u enable row level security;\n"
        "grant select, update on public.u to authenticated;\n"
        "grant usage, select on sequence public.u_id_seq to authenticated;\n"
        "comment on table public.u is 'u';\n"
        "create policy r on public.u for select to anon using (true);\n"  # reading everything is a choice
        "create policy w on public.u for update to authenticated using (true) with check (id > 0);\n")
    assert lint([policy], [migration], ["public"]) == []


def test_the_example_app_lints_clean(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TUSKBASE_DATA_DIR", str(tmp_path))
    assert cli.main(["policies", "lint", str(TODO_APP / "policies"), str(TODO_APP / "migrations")]) == 0
    assert "no problems" in capsys.readouterr().out


def test_the_command_exits_non_zero_with_findings(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUSKBASE_DATA_DIR", str(tmp_path))
    bad = Path(tmp_path / "public.todos.sql")
    bad.write_text("create policy upd on public.todos for update to authenticated using (true);\n")
    assert cli.main(["policies", "lint", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:1: update-no-check:" in out


def test_other_statements_are_reported_with_the_tables_they_touch(tmp_path):
    path = tmp_path / "public.todos.sql"
    path.write_text("alter table public.todos enable row level security;\n"
                    "create view public.v as select * from public.lists;\n")
    found = {(f.rule, f.line, f.message.split(",")[0]) for f in lint([path], [], ["public"])}
    assert ("not-policy", 2, "ViewStmt does not belong in a policy file (only ENABLE ROW LEVEL SECURITY") \
        in found
    assert ("other-table", 2, "touches public.lists") in found
