"""`policies apply`: one transaction, replaces changed policies, drops removed ones, a no-op when nothing
changed, a plan with --dry-run, and refusal of files that touch another table."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import TODO_APP
from tuskbase import cli, policies

POLICY_STATE = """
select p.oid, p.polname, pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
from pg_policy p join pg_class c on c.oid = p.polrelid
where c.relnamespace = 'public'::regnamespace order by p.polname
"""


@pytest.fixture
def app(tmp_path):
    """A copy of the todo app whose policy files a test may edit."""
    folder = tmp_path / "app"
    shutil.copytree(TODO_APP, folder)
    return folder


def state(admin):
    return admin.execute(POLICY_STATE).fetchall()


def test_applying_unchanged_files_changes_nothing(database, admin, app):
    before = state(admin)
    plan = policies.apply_plan(database, app)
    assert not plan.changed and plan.lines == []
    assert plan.files >= 3
    # Same oids: no policy was dropped and re-created.
    assert state(admin) == before


def test_dry_run_prints_the_plan_and_applies_nothing(database, admin, app):
    todos = app / "policies" / "public.todos.sql"
    text = todos.read_text()
    text = text.replace("create policy todos_delete on public.todos for delete to authenticated\n"
                        "  using (public.is_list_member(list_id));", "")
    text = text.replace("create policy todos_select on public.todos for select to authenticated\n"
                        "  using (public.is_list_member(list_id));",
                        "create policy todos_select on public.todos for select to authenticated\n"
                        "  using (public.is_list_member(list_id) and not done);")
    text += "\ncreate policy todos_audit on public.todos for select to service_role using (true);\n"
    todos.write_text(text)
    before = state(admin)
    lines: list[str] = []
    plan = policies.apply_plan(database, app, lines.append, dry_run=True)
    assert plan.lines == ["+ create policy todos_audit on public.todos: as PERMISSIVE to service_role for SELECT "
                          "using (true)",
                          "- drop policy todos_delete on public.todos",
                          "~ replace policy todos_select on public.todos: using (is_list_member(list_id)) -> "
                          "((is_list_member(list_id) AND (NOT done)))"]
    assert plan.changed_tables == ["public.todos"]
    assert any("dry run" in line for line in lines)
    assert state(admin) == before

    applied = policies.apply_plan(database, app)
    assert applied.lines == plan.lines
    names = {row[1] for row in state(admin)}
    assert "todos_audit" in names and "todos_delete" not in names
    qual = next(row[2] for row in state(admin) if row[1] == "todos_select")
    assert "NOT done" in qual
    assert not policies.apply_plan(database, app).changed


def test_a_file_touching_another_table_is_refused_before_anything_runs(database, admin, app):
    (app / "policies" / "public.todos.sql").write_text(
        "alter table public.todos enable row level security;\n\n"
        "create policy sneaky on public.lists for select to anon using (true);\n")
    before = state(admin)
    with pytest.raises(policies.PolicyError) as caught:
        policies.apply_plan(database, app)
    assert "public.todos.sql:3:" in str(caught.value)
    assert state(admin) == before


def test_a_failing_file_rolls_back_every_file(database, admin, app):
    (app / "policies" / "public.lists.sql").write_text(
        "create policy lists_new on public.lists for select to authenticated using (true);\n")
    (app / "policies" / "public.todos.sql").write_text(
        "create policy broken on public.todos for select to authenticated\n  using (no_such_column);\n")
    before = state(admin)
    with pytest.raises(policies.PolicyError) as caught:
        policies.apply_plan(database, app)
    assert "public.todos.sql:" in str(caught.value)
    assert state(admin) == before


def test_cli_apply_dry_run(database, admin, app, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TUSKBASE_DATABASE_URL", database)
    monkeypatch.setenv("TUSKBASE_APP_DIR", str(app))
    monkeypatch.setenv("TUSKBASE_DATA_DIR", str(tmp_path / "data"))
    (app / "policies" / "public.lists.sql").write_text(
        (app / "policies" / "public.lists.sql").read_text().replace("lists_delete", "lists_remove"))
    before = state(admin)
    assert cli.main(["policies", "apply", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "+ create policy lists_remove on public.lists: " in out
    assert "- drop policy lists_delete on public.lists" in out
    assert state(admin) == before
    assert cli.main(["policies", "apply"]) == 0
    assert "lists_remove" in {row[1] for row in state(admin)}
    assert cli.main(["policies", "apply"]) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_dry_run_on_unchanged_files_says_the_same_every_time(database, admin, app, tmp_path, monkeypatch, capsys):
    """Dropping and re-creating a policy moves it in pg_policy: the comparison must not depend on that order."""
    monkeypatch.setenv("TUSKBASE_DATABASE_URL", database)
    monkeypatch.setenv("TUSKBASE_APP_DIR", str(app))
    monkeypatch.setenv("TUSKBASE_DATA_DIR", str(tmp_path / "data"))
    outputs = []
    for _ in range(20):
        assert cli.main(["policies", "apply", "--dry-run"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs == ["tuskbase: policies: 3 files, nothing to change\n"] * 20

    todos = app / "policies" / "public.todos.sql"
    todos.write_text(todos.read_text().replace("to authenticated\n  using (public.is_list_member(list_id));",
                                               "to authenticated, anon\n  using (public.is_list_member(list_id));", 1))
    outputs = []
    for _ in range(5):
        assert cli.main(["policies", "apply", "--dry-run"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs == [outputs[0]] * 5
    assert outputs[0].splitlines() == [
        "tuskbase: ~ replace policy todos_select on public.todos: to authenticated -> anon, authenticated",
        "tuskbase: policies: would change 1 of 3 tables (dry run, nothing applied)",
    ]


def test_table_states_compare_equal_whatever_order_the_catalog_lists_them_in():
    a = '"a": ["PERMISSIVE", ["authenticated"], "SELECT", "true", null]'
    b = '"b": ["PERMISSIVE", ["anon"], "ALL", null, null]'
    first = (True, False, ["anon=r/postgres", "authenticated=arwd/postgres"], f"{{{a}, {b}}}")
    second = (True, False, ["authenticated=arwd/postgres", "anon=r/postgres"], f"{{{b}, {a}}}")
    assert policies.TableState.from_row(first) == policies.TableState.from_row(second)
