"""Stage 3: one SQL statement per request, from a checked plan.

Identifiers come from the schema cache and go through `quote_ident`; every value from the request is a
bound parameter (text, cast in SQL to the column's type as the catalog spells it). Postgres renders the
JSON body: each read returns one row `(body text, rows bigint, total bigint | null)`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, NoReturn

from tuskbase.rest.errors import MAX_BOUND_VALUES, ApiError, parse_error, query_too_large
from tuskbase.rest.parse import FTS_OPERATORS, Field, Filter, Logic, OrderTerm
from tuskbase.rest.plan import Aggregate, Embed, Node, Output, RpcPlan
from tuskbase.schema import Column, Function, Table, quote_ident

COMPARISONS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "isdistinct": "is distinct from",
               "cs": "@>", "cd": "<@", "ov": "&&", "sl": "<<", "sr": ">>", "nxl": "&>", "nxr": "&<", "adj": "-|-"}
PATTERNS = {"like": "like", "ilike": "ilike", "match": "~", "imatch": "~*"}
FTS_FUNCTIONS = {"fts": "to_tsquery", "plfts": "plainto_tsquery", "phfts": "phraseto_tsquery",
                 "wfts": "websearch_to_tsquery"}
IS_SQL = {"null": "is null", "not_null": "is not null", "true": "is true", "false": "is false",
          "unknown": "is unknown"}


@dataclass(slots=True)
class Statement:
    sql: str
    params: list[Any]


class Sql:
    """Collects the bound parameters of one statement while it is rendered: the only binder, so placeholders are
    never rewritten in rendered SQL (where a quoted name such as `"price$1"` could hold the same characters)."""

    def __init__(self) -> None:
        self.params: list[Any] = []

    def bind(self, value: Any) -> str:
        self.params.append(value)
        if len(self.params) > MAX_BOUND_VALUES:
            raise query_too_large(f"The request needs more than {MAX_BOUND_VALUES} values in one statement",
                                  "Use fewer filters (an in.(...) list is one value), or split the request")
        return f"${len(self.params)}"

    # --- expressions -------------------------------------------------------------------------------------

    def field(self, alias: str, column: Column, field: Field) -> tuple[str, str]:
        """SQL of a column (with its JSON path) and the type its values are cast to."""
        expr = f"{quote_ident(alias)}.{quote_ident(column.name)}"
        kind = column.type
        for operator, key in field.json_path:
            if key.isascii() and key.lstrip("-").isdigit() and len(key) < 10:
                expr = f"{expr}{operator}{int(key)}"
            else:
                expr = f"{expr}{operator}{self.bind(key)}::text"
            kind = "text" if operator == "->>" else column.type
        if field.json_path:
            expr = f"({expr})"  # so that casts and operators around it apply to the whole path
        return expr, kind

    def condition(self, node: Node, filter_: Filter) -> str:
        expr, kind = self.field(node.alias, node.column(filter_.field), filter_.field)
        operator, value = filter_.operator, filter_.value
        if operator == "is":
            sql = f"{expr} {IS_SQL[str(value).lower()]}"
        elif operator == "in":
            if kind.endswith("[]"):
                raise parse_error("in. is not supported on array columns; use cs. or ov.")
            sql = f"{expr} = any({self.bind(list(value))}::text[]::{kind}[])"
        elif operator in FTS_OPERATORS:
            language = f"{self.bind(filter_.language)}::regconfig, " if filter_.language else ""
            sql = f"{expr} @@ {FTS_FUNCTIONS[operator]}({language}{self.bind(value)}::text)"
        elif operator in PATTERNS:
            text = str(value).replace("*", "%") if operator in ("like", "ilike") else str(value)
            if filter_.quantifier:
                sql = f"{expr}::text {PATTERNS[operator]} {filter_.quantifier}({self.bind(text)}::text::text[])"
            else:
                sql = f"{expr}::text {PATTERNS[operator]} {self.bind(text)}::text"
        else:
            sql_operator = COMPARISONS[operator]
            if filter_.quantifier:
                array_kind = kind if kind.endswith("[]") else kind + "[]"
                sql = f"{expr} {sql_operator} {filter_.quantifier}({self.bind(value)}::text::{array_kind})"
            else:
                sql = f"{expr} {sql_operator} {self.bind(value)}::text::{kind}"
        return f"not ({sql})" if filter_.negate else sql

    def logic(self, node: Node, tree: Logic) -> str:
        parts = [self.logic(node, c) if isinstance(c, Logic) else self.condition(node, c) for c in tree.children]
        joined = f" {tree.operator} ".join(f"({p})" for p in parts) or ("true" if tree.operator == "and" else "false")
        return f"not ({joined})" if tree.negate else f"({joined})"

    def conditions(self, node: Node) -> list[str]:
        found = [self.condition(node, f) for f in node.filters]
        found.extend(self.logic(node, tree) for tree in node.logic)
        for embed in node.outputs:
            if isinstance(embed, Embed) and embed.inner:
                found.append(self.exists(node, embed))
        for embed, filter_ in node.embed_filters:
            present = str(filter_.value).lower() == "not_null"
            if filter_.negate:
                present = not present
            found.append(self.exists(node, embed) if present else f"not {self.exists(node, embed)}")
        return found

    def where(self, node: Node, extra: list[str] | None = None) -> str:
        found = [*(extra or []), *self.conditions(node)]
        return " where " + " and ".join(found) if found else ""

    def order_terms(self, node: Node) -> list[tuple[str, str]]:
        """(expression, direction) of each order term."""
        terms = []
        for term in node.order:
            if term.relation is not None:
                embed = node.order_embeds[term.relation]
                inner, _ = self.field(embed.node.alias, embed.node.column(term.field), term.field)
                expr = f"(select {inner}{self._from_join(node, embed)} where {self.join(node, embed)})"
            else:
                expr, _ = self.field(node.alias, node.column(term.field), term.field)
            terms.append((expr, _direction(term)))
        return terms

    def order_limit(self, node: Node) -> str:
        sql = ""
        if node.order:
            sql += " order by " + ", ".join(expr + direction for expr, direction in self.order_terms(node))
        return sql + self.limit_offset(node)

    def limit_offset(self, node: Node) -> str:
        sql = ""
        if node.limit is not None:
            sql += f" limit {self.bind(node.limit)}"
        if node.offset:
            sql += f" offset {self.bind(node.offset)}"
        return sql

    def output_columns(self, node: Node) -> list[tuple[str, str, bool]]:
        """(expression, name, is_json) of each output column, spread resources flattened into their parent."""
        columns = []
        for output in node.outputs:
            if isinstance(output, Output):
                expr, _ = self.field(node.alias, output.column, output.field)
                if output.cast:
                    expr = f"cast({expr} as {_type_name(output.cast)})"
                columns.append((expr, output.name, False))
            elif isinstance(output, Aggregate):
                raise AssertionError("aggregates render through grouped()")
            elif output.spread:
                for inner in output.node.outputs:
                    if isinstance(inner, Output):
                        expr, _ = self.field(output.node.alias, inner.column, inner.field)
                        if inner.cast:
                            expr = f"cast({expr} as {_type_name(inner.cast)})"
                        sub = self._from_join(node, output) + self.where(output.node, [self.join(node, output)])
                        columns.append((f"(select {expr}{sub})", inner.name, False))
            else:
                columns.append((self.embed(node, output), output.name, True))
        return columns

    def outputs(self, node: Node) -> str:
        if node.aggregated:
            raise parse_error("Aggregate functions apply to reads only")
        return ", ".join(f"{expr} as {quote_ident(name)}" for expr, name, _ in self.output_columns(node))

    def select(self, node: Node, source: str, extra: list[str] | None = None, limited: bool = True) -> str:
        """The rows of `node` read from `source` (a FROM item naming the node's alias)."""
        if node.aggregated:
            return self.grouped(node, source, extra, limited)
        return (f"select {self.outputs(node)} from {source}{self.where(node, extra)}"
                + (self.order_limit(node) if limited else ""))

    def grouped(self, node: Node, source: str, extra: list[str] | None, limited: bool) -> str:
        """PostgREST's aggregates: every output that is not an aggregate is a GROUP BY key.

        The inner query names each input `_cN_M` / `_aN`; the outer one aggregates and groups them. An
        embedded resource groups by its value as jsonb (json has no equality) and is answered as json.
        Order terms must name a grouping column (ordering by an aggregate is not supported, as in PostgREST).
        """
        inner: list[str] = []
        outer: list[str] = []
        keys: list[str] = []
        grouped_keys: dict[Field, str] = {}  # a column selected as is: what an order term may sort the groups by
        for index, output in enumerate(node.outputs):
            if isinstance(output, Output) and not output.cast:
                grouped_keys.setdefault(output.field, f"_g._c{index}_0")
            if not isinstance(output, Aggregate):
                for offset, (expr, name, is_json) in enumerate(self.output_columns(_only(node, output))):
                    column = f"_c{index}_{offset}"
                    inner.append(f"{expr} as {column}")
                    if is_json:
                        keys.append(f"_g.{column}::jsonb")
                        outer.append(f"(array_agg(_g.{column}))[1] as {quote_ident(name)}")
                    else:
                        keys.append(f"_g.{column}")
                        outer.append(f"_g.{column} as {quote_ident(name)}")
                continue
            argument = "*"
            if output.column is not None and output.field is not None:
                expr, _ = self.field(node.alias, output.column, output.field)
                if output.cast:
                    expr = f"cast({expr} as {_type_name(output.cast)})"
                inner.append(f"{expr} as _a{index}")
                argument = f"_g._a{index}"
            result = f"{output.function}({argument})"
            if output.output_cast:
                result = f"cast({result} as {_type_name(output.output_cast)})"
            outer.append(f"{result} as {quote_ident(output.name)}")
        order = []
        for term in node.order:
            key = grouped_keys.get(term.field) if term.relation is None else None
            if key is None:
                _not_grouped(node, term.field.name)
            order.append(key + _direction(term))
        sql = (f"select {', '.join(outer)} from (select {', '.join(inner)} from {source}{self.where(node, extra)})"
               " as _g")
        if keys:
            sql += " group by " + ", ".join(keys)
        if order:
            sql += " order by " + ", ".join(order)
        return sql + (self.limit_offset(node) if limited else "")

    # --- embedding ----------------------------------------------------------------------------------------

    def join(self, parent: Node, embed: Embed) -> str:
        child, fk = embed.node, embed.fk
        p, c = quote_ident(parent.alias), quote_ident(child.alias)
        if embed.junction is not None:
            junction, fk_in, fk_out = embed.junction
            j = quote_ident(child.alias + "_j")
            on_child = " and ".join(f"{j}.{quote_ident(a)} = {c}.{quote_ident(b)}"
                                    for a, b in zip(fk_out.columns, fk_out.ref_columns, strict=True))
            on_parent = " and ".join(f"{j}.{quote_ident(a)} = {p}.{quote_ident(b)}"
                                     for a, b in zip(fk_in.columns, fk_in.ref_columns, strict=True))
            return f"exists (select 1 from {junction.qualified} as {j} where {on_child} and {on_parent})"
        if embed.to_one:
            pairs = zip(fk.ref_columns, fk.columns, strict=True)
        else:
            pairs = zip(fk.columns, fk.ref_columns, strict=True)
        return " and ".join(f"{c}.{quote_ident(a)} = {p}.{quote_ident(b)}" for a, b in pairs)

    def _from_join(self, parent: Node, embed: Embed) -> str:
        return f" from {embed.node.table.qualified} as {quote_ident(embed.node.alias)}"

    def exists(self, parent: Node, embed: Embed) -> str:
        return f"exists (select 1{self._from_join(parent, embed)}{self.where(embed.node, [self.join(parent, embed)])})"

    def embed(self, parent: Node, embed: Embed) -> str:
        child = embed.node
        inner = self.select(child, self._from_join(parent, embed).removeprefix(" from "), [self.join(parent, embed)])
        if embed.to_one:
            return f"(select row_to_json(_e) from ({inner}) as _e)"
        return f"coalesce((select json_agg(_e) from ({inner}) as _e), '[]'::json)"


def _direction(term: OrderTerm) -> str:
    return (" desc" if term.descending else " asc") + (f" nulls {term.nulls}" if term.nulls else "")


def _not_grouped(node: Node, column: str) -> NoReturn:
    # What Postgres answers (and PostgREST forwards) for an order column outside the automatic GROUP BY.
    raise ApiError(400, "42803", f'column "{node.table.name}.{column}" must appear in the GROUP BY clause or be used '
                   "in an aggregate function", None, "Select the column to group by it, or do not order by it")


def _only(node: Node, output: Output | Embed) -> Node:
    """A shallow copy of `node` with one output, to render it alone."""
    return dataclasses.replace(node, outputs=[output])


# SQL's spellings of built-in types that are not their catalog names: a quoted "int" names no type.
TYPE_ALIASES = {"int": "int4", "integer": "int4", "smallint": "int2", "bigint": "int8", "real": "float4",
                "float": "float8", "double precision": "float8", "boolean": "bool", "decimal": "numeric",
                "character varying": "varchar", "character": "bpchar", "char": "bpchar"}


def _type_name(cast: str) -> str:
    if cast.endswith("[]"):
        return _type_name(cast[:-2]) + "[]"
    name = cast.strip()
    return quote_ident(TYPE_ALIASES.get(name.lower(), name))


def _aggregate(strip_nulls: bool) -> str:
    body = "coalesce(json_agg(_r), '[]'::json)"
    if strip_nulls:
        body = f"json_strip_nulls({body})"
    return body + "::text"


# --- statements ---------------------------------------------------------------------------------------------


def read(node: Node, count: bool, strip_nulls: bool = False) -> Statement:
    sql = Sql()
    relation = f"{node.table.qualified} as {quote_ident(node.alias)}"
    inner = sql.select(node, relation)
    total = _total(sql, node, relation) if count else "null::bigint"
    return Statement(f"select {_aggregate(strip_nulls)}, count(_r.*), {total} from ({inner}) as _r", sql.params)


def _total(sql: Sql, node: Node, relation: str) -> str:
    if node.aggregated:  # the number of groups
        return f"(select count(*) from ({sql.select(node, relation, limited=False)}) as _t)"
    return f"(select count(*) from {relation}{sql.where(node)})"


def planned_count(node: Node) -> Statement:
    """`Prefer: count=planned`: the planner's row estimate of the filtered relation (EXPLAIN, no scan)."""
    sql = Sql()
    text = f"explain (format json) select 1 from {node.table.qualified} as {quote_ident(node.alias)}{sql.where(node)}"
    return Statement(text, sql.params)


def _returning(sql: Sql, node: Node, write: str, strip_nulls: bool) -> str:
    alias = quote_ident(node.alias)
    return (f"with _w as ({write} returning {alias}.*) "
            f"select {_aggregate(strip_nulls)}, count(_r.*), null::bigint from "
            f"(select {sql.outputs(node)} from _w as {alias}) as _r")


def insert(node: Node, groups: list[tuple[list[Column], str]], on_conflict: tuple[str, ...] | None,
           resolution: str | None, returning: bool, strip_nulls: bool = False) -> list[Statement]:
    """One INSERT per group of rows sharing the same columns (one group unless `Prefer: missing=default`).

    With `returning` the groups are data-modifying CTEs of one statement; without, one statement each (their
    row counts come from the command tags, so no RETURNING makes SELECT policies apply to a minimal insert).
    """
    if not returning:
        statements = []
        for columns, rows_json in groups:
            sql = Sql()  # each INSERT is a statement of its own, with its own parameters
            statements.append(Statement(_insert_one(sql, node, columns, rows_json, on_conflict, resolution),
                                        sql.params))
        return statements
    sql = Sql()
    writes = [_insert_one(sql, node, columns, rows_json, on_conflict, resolution) for columns, rows_json in groups]
    alias = quote_ident(node.alias)
    ctes = ", ".join(f"_w{i} as ({w} returning {alias}.*)" for i, w in enumerate(writes))
    union = " union all ".join(f"select * from _w{i}" for i in range(len(writes)))
    return [Statement(f"with {ctes}, _w as ({union}) select {_aggregate(strip_nulls)}, count(_r.*), null::bigint "
                      f"from (select {sql.outputs(node)} from _w as {alias}) as _r", sql.params)]


def _insert_one(sql: Sql, node: Node, columns: list[Column], rows_json: str, on_conflict: tuple[str, ...] | None,
                resolution: str | None) -> str:
    table = node.table
    alias = quote_ident(node.alias)
    names = ", ".join(quote_ident(c.name) for c in columns)
    source = f"json_populate_recordset(null::{table.qualified}, {sql.bind(rows_json)}::json) as _p"
    if columns:
        write = f"insert into {table.qualified} as {alias} ({names}) select {names} from {source}"
    else:
        write = f"insert into {table.qualified} as {alias} select from {source}"
    if resolution is not None:
        target = on_conflict or table.pk
        if not target:
            raise ApiError(400, "PGRST204", f"Table '{table.name}' has no primary key; use on_conflict=")
        conflict = ", ".join(quote_ident(c) for c in target)
        if resolution == "ignore-duplicates" or not columns:
            write += f" on conflict ({conflict}) do nothing"
        else:
            updates = ", ".join(f"{quote_ident(c.name)} = excluded.{quote_ident(c.name)}" for c in columns)
            write += f" on conflict ({conflict}) do update set {updates}"
    return write


def update(node: Node, columns: list[Column], row_json: str, returning: bool, strip_nulls: bool = False
           ) -> Statement:
    sql = Sql()
    table, alias = node.table, quote_ident(node.alias)
    values = sql.bind(row_json)
    sets = ", ".join(f"{quote_ident(c.name)} = _p.{quote_ident(c.name)}" for c in columns)
    write = (f"update {table.qualified} as {alias} set {sets} "
             f"from (select * from json_populate_record(null::{table.qualified}, {values}::json)) as _p"
             f"{sql.where(node)}")
    if not returning:
        return Statement(write, sql.params)
    return Statement(_returning(sql, node, write, strip_nulls), sql.params)


def delete(node: Node, returning: bool, strip_nulls: bool = False) -> Statement:
    sql = Sql()
    write = f"delete from {node.table.qualified} as {quote_ident(node.alias)}{sql.where(node)}"
    if not returning:
        return Statement(write, sql.params)
    return Statement(_returning(sql, node, write, strip_nulls), sql.params)


def rpc(plan: RpcPlan, method: str, count: bool, strip_nulls: bool = False) -> Statement:
    sql = Sql()
    function = plan.function
    call, source = _call(sql, function, plan.args, method)
    name = f"{quote_ident(function.schema)}.{quote_ident(function.name)}"
    if plan.node is not None:
        node = plan.node
        relation = f"{source}lateral {name}({call}) as {quote_ident(node.alias)}"
        inner = sql.select(node, relation)
        total = _total(sql, node, relation) if count else "null::bigint"
        return Statement(f"select {_aggregate(strip_nulls)}, count(_r.*), {total} from ({inner}) as _r",
                         sql.params)
    from_clause = f" from {source.rstrip(', ')}" if source else ""
    if function.returns_set:
        relation = f"{source}lateral {name}({call}) as _v"
        return Statement(f"select coalesce(json_agg(_v), '[]'::json)::text, count(*), null::bigint from {relation}",
                         sql.params)
    return Statement(f"select to_json({name}({call}))::text, 1::bigint, null::bigint{from_clause}", sql.params)


def _call(sql: Sql, function: Function, args: dict[str, Any], method: str) -> tuple[str, str]:
    """(argument list, FROM items ending in ', ' or '') of a call with named arguments."""
    if "" in args:  # one unnamed json argument: the whole body
        kind = function.args[0].type
        return f"{sql.bind(json.dumps(args['']))}::text::{kind}", ""
    types = {a.name: a.type for a in function.args}
    if not args:
        return "", ""
    if method in ("GET", "HEAD"):
        call = ", ".join(f"{quote_ident(k)} => {sql.bind(str(v))}::text::{types[k]}" for k, v in args.items())
        return call, ""
    definition = ", ".join(f"{quote_ident(k)} {types[k]}" for k in args)
    source = f"json_to_record({sql.bind(json.dumps(args))}::json) as _a({definition}), "
    call = ", ".join(f"{quote_ident(k)} => _a.{quote_ident(k)}" for k in args)
    return call, source


def table_columns(table: Table) -> list[str]:
    return list(table.columns)
