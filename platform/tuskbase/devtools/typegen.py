"""`tuskbase gen types typescript|swift|kotlin`: the exposed schemas as client-side types.

TypeScript follows the shape `supabase gen types typescript` prints (postgres-meta's template), so that
`createClient<Database>()` of supabase-js types every query: `Database[schema]` holds `Tables` (Row, Insert,
Update, Relationships), `Views`, `Functions` (Args, Returns), `Enums` and `CompositeTypes`, followed by the
`Tables<>`, `TablesInsert<>`, `TablesUpdate<>`, `Enums<>`, `CompositeTypes<>` helpers and `Constants`.
Swift prints Codable structs per table (Select / Insert / Update) as `supabase gen types swift` does; Kotlin
prints kotlinx.serialization data classes for supabase-kt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from tuskbase.devtools.catalog import Catalog, Column, Function, Relation, TypeRef

NEVER = "[_ in never]: never"
POSTGREST_VERSION = "12"  # the PostgREST grammar /rest/v1 serves (aggregates, spreads, max-affected)
NUMBERS = {"int2", "int4", "int8", "float4", "float8", "numeric", "oid"}
STRINGS = {"bytea", "bpchar", "varchar", "date", "text", "citext", "time", "timetz", "timestamp", "timestamptz",
           "uuid", "vector", "interval", "name", "inet", "cidr", "macaddr", "money", "tsvector", "char"}


# --- TypeScript ---------------------------------------------------------------------------------------------


def _q(name: str) -> str:
    return json.dumps(name)


def _key(name: str) -> str:
    """A property name as prettier leaves it in supabase's output: bare when it is an identifier."""
    return name if re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", name) else json.dumps(name)


def ts_type(ref: TypeRef, catalog: Catalog) -> str:
    name = ref.name
    if name == "bool":
        return "boolean"
    if name in NUMBERS:
        return "number"
    if name in STRINGS:
        return "string"
    if name in ("json", "jsonb"):
        return "Json"
    if name == "void":
        return "undefined"
    if name == "record":
        return "Record<string, unknown>"
    if name.startswith("_"):
        return f"({ts_type(TypeRef(name[1:], ref.schema), catalog)})[]"
    if catalog.enum(ref) is not None:
        return f"Database[{_q(ref.schema)}][\"Enums\"][{_q(name)}]"
    if catalog.composite(ref) is not None:
        return f"Database[{_q(ref.schema)}][\"CompositeTypes\"][{_q(name)}]"
    relation = catalog.relation(ref.schema, name)
    if relation is not None:
        group = "Views" if relation.is_view else "Tables"
        return f"Database[{_q(ref.schema)}][{_q(group)}][{_q(name)}][\"Row\"]"
    return "unknown"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def line(self, text: str = "") -> None:
        self.lines.append(("  " * self.depth + text) if text else "")

    def open(self, text: str) -> None:
        self.line(text + " {")
        self.depth += 1

    def close(self, suffix: str = "") -> None:
        self.depth -= 1
        self.line("}" + suffix)

    def block(self, head: str, entries: Iterable[str]) -> None:
        entries = list(entries)
        if not entries:
            self.line(f"{head} {{")
            self.line(f"  {NEVER}")
            self.line("}")
            return
        self.open(head)
        for entry in entries:
            self.line(entry)
        self.close()


def _row(column: Column, catalog: Catalog) -> str:
    return f"{_key(column.name)}: {ts_type(column.type, catalog)}{' | null' if column.nullable else ''}"


def _insert(column: Column, catalog: Catalog) -> str:
    if column.always_generated:
        return f"{_key(column.name)}?: never"
    optional = "?" if column.nullable or column.has_default else ""
    return f"{_key(column.name)}{optional}: {ts_type(column.type, catalog)}{' | null' if column.nullable else ''}"


def _update(column: Column, catalog: Catalog) -> str:
    if column.always_generated:
        return f"{_key(column.name)}?: never"
    return f"{_key(column.name)}?: {ts_type(column.type, catalog)}{' | null' if column.nullable else ''}"


def _view_write(column: Column, catalog: Catalog) -> str:
    if not column.updatable:
        return f"{_key(column.name)}?: never"
    return f"{_key(column.name)}?: {ts_type(column.type, catalog)} | null"


def _relationships(out: _Writer, relation: Relation) -> None:
    same_schema = [r for r in relation.relationships if r.ref_schema == relation.schema]
    if not same_schema:
        out.line("Relationships: []")
        return
    out.line("Relationships: [")
    out.depth += 1
    for rel in same_schema:
        out.line("{")
        out.depth += 1
        out.line(f"foreignKeyName: {_q(rel.name)}")
        out.line(f"columns: {json.dumps(rel.columns)}")
        out.line(f"isOneToOne: {'true' if rel.one_to_one else 'false'}")
        out.line(f"referencedRelation: {_q(rel.ref_relation)}")
        out.line(f"referencedColumns: {json.dumps(rel.ref_columns)}")
        out.close(",")
    out.depth -= 1
    out.line("]")


def _exposed(function: Function) -> bool:
    """PostgREST calls a function with named arguments, or with one unnamed json argument."""
    inputs = [a for a in function.args if a.mode in ("i", "b", "v")]
    return all(a.name for a in inputs) or len(inputs) == 1


def _function_args(function: Function, catalog: Catalog) -> str:
    inputs = [a for a in function.args if a.mode == "i"]
    if not inputs:
        return "Record<PropertyKey, never>"
    return "{ " + "; ".join(f"{_key(a.name)}{'?' if a.has_default else ''}: {ts_type(a.type, catalog)}"
                            for a in inputs) + " }"


def _function_returns(function: Function, catalog: Catalog) -> str:
    table_args = [a for a in function.args if a.mode == "t"]
    if table_args:
        shape = "{ " + "; ".join(f"{_key(a.name)}: {ts_type(a.type, catalog)}" for a in table_args) + " }"
    elif function.return_relation is not None:
        relation = catalog.relation(function.return_type.schema, function.return_relation)
        columns = relation.columns if relation is not None else []
        shape = "{ " + "; ".join(_row(c, catalog) for c in columns) + " }"
    else:
        shape = ts_type(function.return_type, catalog)
    return shape + ("[]" if function.returns_set else "")


def typescript(catalog: Catalog) -> str:
    out = _Writer()
    out.line("export type Json =")
    for variant in ("string", "number", "boolean", "null", "{ [key: string]: Json | undefined }", "Json[]"):
        out.line(f"  | {variant}")
    out.line()
    out.open("export type Database =")
    # Lets createClient<Database>() pick the PostgREST dialect without a second type argument.
    out.open("__InternalSupabase:")
    out.line(f"PostgrestVersion: {_q(POSTGREST_VERSION)}")
    out.close()
    for schema in catalog.schemas:
        relations = [r for r in catalog.relations if r.schema == schema]
        out.open(f"{_key(schema)}:")
        tables = [r for r in relations if not r.is_view]
        if tables:
            out.open("Tables:")
            for table in tables:
                out.open(f"{_key(table.name)}:")
                out.block("Row:", (_row(c, catalog) for c in table.columns))
                out.block("Insert:", (_insert(c, catalog) for c in table.columns))
                out.block("Update:", (_update(c, catalog) for c in table.columns))
                _relationships(out, table)
                out.close()
            out.close()
        else:
            out.block("Tables:", [])
        views = [r for r in relations if r.is_view]
        if views:
            out.open("Views:")
            for view in views:
                out.open(f"{_key(view.name)}:")
                out.block("Row:", (_row(c, catalog) for c in view.columns))
                if view.updatable:
                    out.block("Insert:", (_view_write(c, catalog) for c in view.columns))
                    out.block("Update:", (_view_write(c, catalog) for c in view.columns))
                _relationships(out, view)
                out.close()
            out.close()
        else:
            out.block("Views:", [])
        functions: dict[str, list[Function]] = {}
        for function in catalog.functions:
            if function.schema == schema and _exposed(function):
                functions.setdefault(function.name, []).append(function)
        if functions:
            out.open("Functions:")
            for name, overloads in functions.items():
                out.open(f"{_key(name)}:")
                out.line("Args: " + " | ".join(_function_args(f, catalog) for f in overloads))
                out.line("Returns: " + _function_returns(overloads[0], catalog))
                out.close()
            out.close()
        else:
            out.block("Functions:", [])
        out.block("Enums:", (f"{_key(e.name)}: " + " | ".join(_q(v) for v in e.values)
                             for e in catalog.enums if e.schema == schema))
        composites = [c for c in catalog.composites if c.schema == schema]
        if composites:
            out.open("CompositeTypes:")
            for composite in composites:
                out.block(f"{_key(composite.name)}:", (f"{_key(n)}: {ts_type(t, catalog)} | null"
                                                     for n, t in composite.attributes))
            out.close()
        else:
            out.block("CompositeTypes:", [])
        out.close()
    out.close()
    out.line()
    default = "public" if "public" in catalog.schemas else catalog.schemas[0]
    out.lines.append(HELPERS.replace("__DEFAULT__", _q(default)))
    out.open("export const Constants =")
    for schema in catalog.schemas:
        out.open(f"{_key(schema)}:")
        enums = [e for e in catalog.enums if e.schema == schema]
        if enums:
            out.open("Enums:")
            for enum in enums:
                out.line(f"{_key(enum.name)}: [{', '.join(_q(v) for v in enum.values)}],")
            out.close(",")
        else:
            out.line("Enums: {},")
        out.close(",")
    out.close(" as const")
    return "\n".join(out.lines) + "\n"


# The generic helpers `supabase gen types typescript` prints after `Database` (same names and parameters).
HELPERS = """type DatabaseWithoutInternals = Omit<Database, "__InternalSupabase">

type DefaultSchema = DatabaseWithoutInternals[Extract<keyof Database, __DEFAULT__>]

export type Tables<
  DefaultSchemaTableNameOrOptions extends
    | keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
    ? keyof (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
        DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])
    : never = never,
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
      DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])[TableName] extends {
      Row: infer R
    }
    ? R
    : never
  : DefaultSchemaTableNameOrOptions extends keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    ? (DefaultSchema["Tables"] & DefaultSchema["Views"])[DefaultSchemaTableNameOrOptions] extends {
        Row: infer R
      }
      ? R
      : never
    : never

export type TablesInsert<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never,
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Insert: infer I
    }
    ? I
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
    ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends { Insert: infer I }
      ? I
      : never
    : never

export type TablesUpdate<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never,
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Update: infer U
    }
    ? U
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
    ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends { Update: infer U }
      ? U
      : never
    : never

export type Enums<
  DefaultSchemaEnumNameOrOptions extends
    | keyof DefaultSchema["Enums"]
    | { schema: keyof DatabaseWithoutInternals },
  EnumName extends DefaultSchemaEnumNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
    ? keyof DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"]
    : never = never,
> = DefaultSchemaEnumNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"][EnumName]
  : DefaultSchemaEnumNameOrOptions extends keyof DefaultSchema["Enums"]
    ? DefaultSchema["Enums"][DefaultSchemaEnumNameOrOptions]
    : never

export type CompositeTypes<
  PublicCompositeTypeNameOrOptions extends
    | keyof DefaultSchema["CompositeTypes"]
    | { schema: keyof DatabaseWithoutInternals },
  CompositeTypeName extends PublicCompositeTypeNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
    ? keyof DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"]
    : never = never,
> = PublicCompositeTypeNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"][CompositeTypeName]
  : PublicCompositeTypeNameOrOptions extends keyof DefaultSchema["CompositeTypes"]
    ? DefaultSchema["CompositeTypes"][PublicCompositeTypeNameOrOptions]
    : never
"""


# --- Swift ----------------------------------------------------------------------------------------------------

SWIFT_TYPES = {"bool": "Bool", "int2": "Int16", "int4": "Int32", "int8": "Int64", "float4": "Float",
               "float8": "Double", "numeric": "Decimal", "uuid": "UUID", "json": "AnyJSON", "jsonb": "AnyJSON"}


def pascal(name: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name) if w]
    text = "".join(w[:1].upper() + w[1:] for w in words) or "Unnamed"
    return text if not text[0].isdigit() else "_" + text


def camel(name: str) -> str:
    text = pascal(name)
    return text[:1].lower() + text[1:]


# Column names that are keywords become `backticked` identifiers in both languages.
SWIFT_KEYWORDS = frozenset({"associatedtype", "class", "deinit", "enum", "extension", "func", "import", "init",
                            "inout", "internal", "let", "operator", "private", "protocol", "public", "static",
                            "struct", "subscript", "typealias", "var", "break", "case", "continue", "default",
                            "defer", "do", "else", "fallthrough", "for", "guard", "if", "in", "repeat", "return",
                            "switch", "where", "while", "as", "catch", "false", "is", "nil", "rethrows", "super",
                            "self", "throw", "throws", "true", "try", "Type", "Self", "Any"})
KOTLIN_KEYWORDS = frozenset({"as", "break", "class", "continue", "do", "else", "false", "for", "fun", "if", "in",
                             "interface", "is", "null", "object", "package", "return", "super", "this", "throw",
                             "true", "try", "typealias", "typeof", "val", "var", "when", "while"})


def swift_name(name: str) -> str:
    text = camel(name)
    return f"`{text}`" if text in SWIFT_KEYWORDS else text


def kotlin_name(name: str) -> str:
    text = camel(name)
    return f"`{text}`" if text in KOTLIN_KEYWORDS else text


def swift_type(ref: TypeRef, catalog: Catalog) -> str:
    if ref.name.startswith("_"):
        return f"[{swift_type(TypeRef(ref.name[1:], ref.schema), catalog)}]"
    if ref.name in SWIFT_TYPES:
        return SWIFT_TYPES[ref.name]
    if catalog.enum(ref) is not None:
        return pascal(ref.name)
    return "String"


def swift(catalog: Catalog) -> str:
    lines = ["import Foundation", "import Supabase", ""]
    for schema in catalog.schemas:
        lines.append(f"internal enum {pascal(schema)}Schema {{")
        for enum in (e for e in catalog.enums if e.schema == schema):
            lines.append(f"  internal enum {pascal(enum.name)}: String, Codable, Hashable, Sendable {{")
            lines.extend(f"    case {swift_name(v)} = {json.dumps(v)}" for v in enum.values)
            lines.append("  }")
        for relation in (r for r in catalog.relations if r.schema == schema):
            kinds = ["Select"] if relation.is_view and not relation.updatable else ["Select", "Insert", "Update"]
            for kind in kinds:
                lines.extend(_swift_struct(relation, kind, catalog))
        lines.append("}")
    return "\n".join(lines) + "\n"


def _swift_struct(relation: Relation, kind: str, catalog: Catalog) -> list[str]:
    columns = [c for c in relation.columns if kind == "Select" or not c.always_generated]
    identifiable = any(c.name == "id" for c in columns)
    protocols = "Codable, Hashable, Sendable" + (", Identifiable" if identifiable and kind == "Select" else "")
    lines = [f"  internal struct {pascal(relation.name)}{kind}: {protocols} {{"]
    for column in columns:
        optional = column.nullable if kind == "Select" else (
            column.nullable or column.has_default or kind == "Update")
        lines.append(f"    internal let {swift_name(column.name)}: {swift_type(column.type, catalog)}"
                     + ("?" if optional else ""))
    lines.append("    internal enum CodingKeys: String, CodingKey {")
    lines.extend(f"      case {swift_name(c.name)} = {json.dumps(c.name)}" for c in columns)
    lines.append("    }")
    lines.append("  }")
    return lines


# --- Kotlin -----------------------------------------------------------------------------------------------------

KOTLIN_TYPES = {"bool": "Boolean", "int2": "Short", "int4": "Int", "int8": "Long", "float4": "Float",
                "float8": "Double", "numeric": "Double", "json": "JsonElement", "jsonb": "JsonElement"}


def kotlin_type(ref: TypeRef, catalog: Catalog) -> str:
    if ref.name.startswith("_"):
        return f"List<{kotlin_type(TypeRef(ref.name[1:], ref.schema), catalog)}>"
    if ref.name in KOTLIN_TYPES:
        return KOTLIN_TYPES[ref.name]
    if catalog.enum(ref) is not None:
        return pascal(ref.name)
    return "String"  # uuid, timestamps, text: as supabase-kt receives them


def kotlin(catalog: Catalog, package: str = "tuskbase.generated") -> str:
    lines = [f"package {package}", "", "import kotlinx.serialization.SerialName",
             "import kotlinx.serialization.Serializable", "import kotlinx.serialization.json.JsonElement", ""]
    for enum in catalog.enums:
        lines.append("@Serializable")
        lines.append(f"enum class {pascal(enum.name)} {{")
        lines.extend(f"    @SerialName({json.dumps(v)}) {pascal(v).upper()}," for v in enum.values)
        lines.append("}")
        lines.append("")
    for relation in catalog.relations:
        kinds = ["", "Insert", "Update"] if not relation.is_view or relation.updatable else [""]
        for kind in kinds:
            lines.extend(_kotlin_class(relation, kind, catalog))
            lines.append("")
    return "\n".join(lines)


def _kotlin_class(relation: Relation, kind: str, catalog: Catalog) -> list[str]:
    columns = [c for c in relation.columns if not kind or not c.always_generated]
    lines = ["@Serializable", f"data class {pascal(relation.name)}{kind}("]
    for column in columns:
        optional = column.nullable if not kind else (column.nullable or column.has_default or kind == "Update")
        kind_name = kotlin_type(column.type, catalog) + ("?" if optional else "")
        default = " = null" if optional and kind else ""
        serial = f"@SerialName({json.dumps(column.name)})"
        lines.append(f"    {serial} val {kotlin_name(column.name)}: {kind_name}{default},")
    lines.append(")")
    return lines


GENERATORS = {"typescript": typescript, "swift": swift, "kotlin": kotlin}
