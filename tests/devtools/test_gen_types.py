"""`tuskbase gen types`: the todo app's schema as supabase-js types, checked by the TypeScript compiler.

A typed supabase-js usage must compile against the generated file, and a wrong one (a missing required
column, an unknown column, a wrong RPC argument) must not: both directions, so the types mean something.
Swift and Kotlin compilers are not installed here: their output is checked for structure only.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.devtools.conftest import NODE_DIR, run_tuskbase

TSC_OPTIONS = ["--noEmit", "--strict", "--target", "es2022", "--module", "esnext", "--moduleResolution", "bundler",
               "--skipLibCheck"]

GOOD_USAGE = """
import { createClient } from "@supabase/supabase-js"
import type { Database, Tables, TablesInsert, TablesUpdate } from "./database.types"

const supabase = createClient<Database>("http://127.0.0.1:54321", "anon-key")

export async function readAndWrite(): Promise<void> {
  const { data } = await supabase.from("todos").select("id, title, done, position, lists(title)").eq("done", false)
  for (const todo of data ?? []) {
    const title: string = todo.title
    const done: boolean = todo.done
    const position: number = todo.position
    const listTitle: string | undefined = todo.lists?.title
    console.log(title, done, position, listTitle)
  }
  const lists = await supabase.from("lists").select("title, todos(title, done)").single()
  const firstDone: boolean | undefined = lists.data?.todos[0]?.done
  const row: TablesInsert<"todos"> = { list_id: "00000000-0000-4000-8000-000000000001", title: "milk" }
  await supabase.from("todos").insert(row)
  const patch: TablesUpdate<"todos"> = { done: true }
  await supabase.from("todos").update(patch).eq("id", "x")
  const member = await supabase.rpc("is_list_member", { target_list: "00000000-0000-4000-8000-000000000001" })
  const isMember: boolean | null = member.data
  const createdBy: Tables<"todos">["created_by"] = null
  console.log(firstDone, isMember, createdBy)
}
"""

# Each line must be a type error on its own: (marker, statement).
BAD_USAGES = {
    "insert-missing-title": 'await supabase.from("todos").insert({ list_id: "x" })',
    "unknown-table": 'await supabase.from("nope").select("*")',
    "string-is-not-boolean": 'const x: string = (await supabase.from("todos").select("done").single()).data!.done',
    "wrong-rpc-argument": 'await supabase.rpc("is_list_member", { list: "x" })',
    "update-wrong-type": 'await supabase.from("todos").update({ done: "yes" }).eq("id", "x")',
}
BAD_TEMPLATE = """
import { createClient } from "@supabase/supabase-js"
import type { Database } from "./database.types"

const supabase = createClient<Database>("http://127.0.0.1:54321", "anon-key")

export async function wrong(): Promise<void> {
  STATEMENT
}
"""


def generate(cli_env, folder: Path, language: str = "typescript", name: str = "database.types.ts") -> str:
    target = folder / name
    done = run_tuskbase("gen", "types", language, "--output", str(target), env=cli_env)
    assert done.returncode == 0, done.stderr
    return target.read_text()


def type_check(tsc: list[str], folder: Path, *files: str) -> subprocess.CompletedProcess[str]:
    if not (folder / "node_modules").exists():
        os.symlink(NODE_DIR / "node_modules", folder / "node_modules")
    return subprocess.run([*tsc, *TSC_OPTIONS, *files], cwd=folder, capture_output=True, text=True, timeout=300)


def test_typescript_of_the_todo_app_types_a_supabase_js_client(cli_env, tsc, tmp_path):
    text = generate(cli_env, tmp_path)
    assert "export type Database = {" in text
    for part in ("Tables: {", "Views: {", "Functions: {", "Enums: {", "CompositeTypes: {", "Row: {", "Insert: {",
                 "Update: {", "Relationships: [", "export type Tables<", "export type TablesInsert<",
                 "export const Constants = {"):
        assert part in text, part
    assert re.search(r"todos: \{\n\s+Row: \{\n(\s+\w+.*\n)*?\s+title: string\n", text)
    assert 'foreignKeyName: "todos_list_id_fkey"' in text
    assert "touch_updated_at" not in text  # a trigger function is no RPC
    (tmp_path / "usage.ts").write_text(GOOD_USAGE)
    checked = type_check(tsc, tmp_path, "usage.ts")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_wrong_usage_does_not_compile(cli_env, tsc, tmp_path):
    generate(cli_env, tmp_path)
    files = []
    for marker, statement in BAD_USAGES.items():
        files.append(f"bad-{marker}.ts")
        (tmp_path / files[-1]).write_text(BAD_TEMPLATE.replace("STATEMENT", statement))
    checked = type_check(tsc, tmp_path, *files)  # one compiler run; each file must have its own error
    assert checked.returncode != 0
    failing = set(re.findall(r"^(bad-[\w-]+\.ts)\(\d+,\d+\): error TS", checked.stdout, re.M))
    assert failing == set(files), checked.stdout


EXTRAS = """
create type public.priority as enum ('low', 'high');
create type public.point2 as (x float8, y float8);
alter table public.todos add column priority public.priority not null default 'low',
  add column tags text[], add column meta jsonb,
  add column seq bigint generated always as identity;
create view public.open_todos as select id, title, priority from public.todos where not done;
create view public.todo_counts as select list_id, count(*) as n from public.todos group by list_id;
create function public.todos_of(target uuid, max_rows int default 10) returns setof public.todos
  language sql stable as $$ select * from public.todos where list_id = target limit max_rows $$;
create function public.origin() returns public.point2 language sql as $$ select (0, 0)::public.point2 $$;
"""

EXTRA_USAGE = """
import { createClient } from "@supabase/supabase-js"
import type { Database, Enums, CompositeTypes } from "./database.types"
import { Constants } from "./database.types"

const supabase = createClient<Database>("http://127.0.0.1:54321", "anon-key")

export async function extras(): Promise<void> {
  const level: Enums<"priority"> = "high"
  const levels: readonly string[] = Constants.public.Enums.priority
  const open = await supabase.from("open_todos").select("id, title, priority")
  const p: "low" | "high" | null | undefined = open.data?.[0]?.priority
  const tags: string[] | null | undefined = (await supabase.from("todos").select("tags").single()).data?.tags
  await supabase.from("todos").insert({ list_id: "x", title: "t", priority: "low", meta: { a: [1, "b"] } })
  const rows = await supabase.rpc("todos_of", { target: "x" })
  const first: number | undefined = rows.data?.[0]?.position
  const point: CompositeTypes<"point2"> = { x: 1, y: null }
  console.log(level, levels, p, tags, first, point)
}
"""


def test_enums_views_composites_arrays_json_and_set_functions(admin, cli_env, tsc, tmp_path):
    admin.execute(EXTRAS)
    text = generate(cli_env, tmp_path)
    assert 'priority: "low" | "high"' in text
    assert 'seq?: never' in text  # generated always: never written
    assert 'Args: { target: string; max_rows?: number }' in text
    (tmp_path / "extras.ts").write_text(EXTRA_USAGE)
    checked = type_check(tsc, tmp_path, "extras.ts")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    bad = {"bad-enum.ts": 'await supabase.from("todos").insert({ list_id: "x", title: "t", priority: "urgent" })',
           "bad-identity.ts": 'await supabase.from("todos").insert({ list_id: "x", title: "t", seq: 5 })',
           "bad-view.ts": 'await supabase.from("todo_counts").insert({ n: 1 })'}
    for name, statement in bad.items():
        (tmp_path / name).write_text(BAD_TEMPLATE.replace("STATEMENT", statement))
    checked = type_check(tsc, tmp_path, *bad)
    assert set(re.findall(r"^(bad-[\w-]+\.ts)\(", checked.stdout, re.M)) == set(bad), checked.stdout


def test_swift_and_kotlin_shapes(admin, cli_env, tmp_path):
    """No Swift or Kotlin compiler here: the structure is checked, not compiled."""
    admin.execute(EXTRAS)
    swift = generate(cli_env, tmp_path, "swift", "Database.swift")
    assert swift.startswith("import Foundation\nimport Supabase\n")
    assert "internal enum PublicSchema {" in swift
    assert "internal enum Priority: String, Codable, Hashable, Sendable {" in swift
    assert '    case high = "high"' in swift
    select = re.search(r"internal struct TodosSelect: Codable, Hashable, Sendable, Identifiable \{\n(.*?)\n  \}",
                       swift, re.S)
    assert select, swift
    body = select.group(1)
    assert "internal let id: UUID\n" in body and "internal let createdBy: UUID?\n" in body
    assert "internal let priority: Priority\n" in body and "internal let tags: [String]?\n" in body
    assert 'case listId = "list_id"' in body
    insert = re.search(r"internal struct TodosInsert: Codable, Hashable, Sendable \{\n(.*?)\n  \}", swift, re.S)
    assert insert and "internal let title: String\n" in insert.group(1) and "seq" not in insert.group(1)
    assert "internal struct OpenTodosInsert" in swift  # a simple view is updatable
    assert "internal struct TodoCountsSelect" in swift and "TodoCountsInsert" not in swift
    assert swift.count("{") == swift.count("}")

    kotlin = generate(cli_env, tmp_path, "kotlin", "Database.kt")
    assert kotlin.startswith("package tuskbase.generated\n")
    assert "@Serializable\nenum class Priority {\n    @SerialName(\"low\") LOW," in kotlin
    todos = re.search(r"@Serializable\ndata class Todos\(\n(.*?)\n\)", kotlin, re.S)
    assert todos, kotlin
    assert '    @SerialName("list_id") val listId: String,' in todos.group(1)
    assert '    @SerialName("created_by") val createdBy: String?,' in todos.group(1)
    assert '    @SerialName("meta") val meta: JsonElement?,' in todos.group(1)
    insert = re.search(r"data class TodosInsert\(\n(.*?)\n\)", kotlin, re.S)
    assert insert and '@SerialName("title") val title: String,' in insert.group(1)
    assert '@SerialName("done") val done: Boolean? = null,' in insert.group(1) and "seq" not in insert.group(1)
    assert kotlin.count("(") == kotlin.count(")")


def test_an_unknown_language_or_schema_is_refused(cli_env, tmp_path):
    done = run_tuskbase("gen", "types", "cobol", env=cli_env)
    assert done.returncode == 2 and "invalid choice" in done.stderr
    done = run_tuskbase("gen", "types", "typescript", "--schema", "nope", "-o", str(tmp_path / "x.ts"), env=cli_env)
    assert done.returncode == 1 and "no schema named nope" in done.stderr and done.stdout == ""
    assert not (tmp_path / "x.ts").exists()
