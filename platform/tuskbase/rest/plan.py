"""Stage 2: the parsed request checked against the schema cache.

Every table, column, relationship and function named in the request is looked up here, before any SQL
exists; an unknown name is PostgREST's coded error. The result is a tree of `Node`s that `query` renders.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tuskbase.rest import errors
from tuskbase.rest.errors import ApiError
from tuskbase.rest.parse import ApiRequest, Field, Filter, Logic, OrderTerm, SelectItem, parse_filter, parse_select
from tuskbase.schema import Column, ForeignKey, Function, SchemaCache, Table


@dataclass(slots=True)
class Embed:
    name: str  # key in the parent's JSON
    node: Node
    fk: ForeignKey
    to_one: bool  # many-to-one (an object or null) or one-to-many (an array)
    inner: bool
    spread: bool
    junction: tuple[Table, ForeignKey, ForeignKey] | None = None  # many-to-many through a junction table


@dataclass(slots=True)
class Output:
    """One output column: a (possibly JSON-path / cast) column of the node's table."""

    name: str
    column: Column
    field: Field
    cast: str | None


@dataclass(slots=True)
class Aggregate:
    """One aggregated output: `function(column)`, or `count(*)` when `column` is None."""

    name: str
    function: str  # avg | count | max | min | sum
    column: Column | None
    field: Field | None
    cast: str | None  # of the input
    output_cast: str | None


@dataclass(slots=True)
class Node:
    table: Table
    alias: str
    outputs: list[Output | Embed | Aggregate]
    filters: list[Filter]
    logic: list[Logic]
    order: list[OrderTerm]
    limit: int | None
    offset: int | None
    embed_filters: list[tuple[Embed, Filter]] = dataclasses.field(default_factory=list)
    order_embeds: dict[str, Embed] = dataclasses.field(default_factory=dict)  # order=lists(title)

    @property
    def aggregated(self) -> bool:
        """The other outputs group the rows (PostgREST's automatic GROUP BY)."""
        return any(isinstance(o, Aggregate) for o in self.outputs)

    def column(self, field: Field) -> Column:
        column = self.table.columns.get(field.name)
        if column is None:
            raise errors.no_column(self.table.name, field.name)
        return column


@dataclass(slots=True)
class RpcPlan:
    function: Function
    args: dict[str, Any]  # name -> value (JSON value for POST, text for GET)
    node: Node | None  # when the function returns rows of a table: filters, order, select apply


class Planner:
    def __init__(self, cache: SchemaCache, max_rows: int, aggregates: bool = False) -> None:
        self.cache = cache
        self.max_rows = max_rows
        self.aggregates = aggregates  # TUSKBASE_REST_AGGREGATES_ENABLED
        self._aliases = 0
        self.paths: set[tuple[str, ...]] = set()  # embedding paths the select visited

    def alias(self) -> str:
        self._aliases += 1
        return f"t{self._aliases - 1}"

    def table(self, schema: str, name: str) -> Table:
        table = self.cache.table(schema, name)
        if table is None:
            raise errors.no_table(schema, name)
        return table

    def read_node(self, request: ApiRequest, table: Table, select: list[SelectItem] | None = None,
                  path: tuple[str, ...] = ()) -> Node:
        self.paths.add(path)
        node = Node(table, self.alias(), [], request.filters.get(path, []), request.logic.get(path, []),
                    request.order.get(path, []), request.limit.get(path), request.offset.get(path))
        items = select if select is not None else [SelectItem("star")]
        for item in items:
            if item.kind == "star":
                node.outputs.extend(Output(c.name, c, Field(c.name), None) for c in table.columns.values())
            elif item.kind == "aggregate" or (path and len(items) == 1 and _legacy_count(item, table)):
                node.outputs.append(self.aggregate(node, item))
            elif item.kind == "column":
                assert item.field is not None
                column = node.column(item.field)
                node.outputs.append(Output(item.alias or item.field.default_alias, column, item.field, item.cast))
            else:
                node.outputs.append(self.embed(request, node, item, path))
        for filter_ in node.filters:
            self._check_field(node, filter_.field)
        for term in node.order:
            if term.relation is None:
                self._check_field(node, term.field)
                continue
            embed = next((o for o in node.outputs if isinstance(o, Embed) and o.name == term.relation), None)
            if embed is None or not embed.to_one:
                raise ApiError(400, "PGRST118", f"A related order on '{term.relation}' is not possible",
                               f"'{term.relation}' must be an embedded many-to-one or one-to-one resource")
            embed.node.column(term.field)
            node.order_embeds[term.relation] = embed
        for tree in node.logic:
            self._check_logic(node, tree)
        if not path and self.max_rows and (node.limit is None or node.limit > self.max_rows):
            node.limit = self.max_rows
        return node

    def aggregate(self, node: Node, item: SelectItem) -> Aggregate:
        if item.kind == "column":  # `count` without parentheses: PostgREST's legacy count, never refused
            return Aggregate(item.alias or "count", "count", None, None, None, item.cast)
        if not self.aggregates:
            raise ApiError(400, "PGRST123", "Use of aggregate functions is not allowed")
        assert item.function is not None
        column = node.column(item.field) if item.field is not None else None
        return Aggregate(item.alias or item.function, item.function, column, item.field, item.cast, item.output_cast)

    def _check_field(self, node: Node, field: Field) -> None:
        node.column(field)

    def _check_logic(self, node: Node, tree: Logic) -> None:
        for child in tree.children:
            if isinstance(child, Logic):
                self._check_logic(node, child)
            else:
                self._check_field(node, child.field)

    def embed(self, request: ApiRequest, parent: Node, item: SelectItem, path: tuple[str, ...]) -> Embed:
        assert item.relation is not None
        fk, to_one, target, junction = self.relationship(parent.table, item.relation, item.hint)
        name = item.alias or item.relation
        child_path = (*path, name)
        # Filters on `name` itself at the parent level (`lists=not.is.null`) test the embed's presence.
        presence = [f for f in parent.filters if f.field.name == name and f.field.name not in parent.table.columns]
        if presence:
            parent.filters = [f for f in parent.filters if f not in presence]
        child = self.read_node(request, target, item.children or None, child_path)
        embed = Embed(name, child, fk, to_one, item.inner, item.kind == "spread", junction)
        for filter_ in presence:
            if filter_.operator != "is" or str(filter_.value).lower() not in ("null", "not_null"):
                raise ApiError(400, errors.EMBED_FILTER, "Bad operator on the '" + name + "' embedded resource",
                               "Only is null or not is null filters are allowed on embedded resources")
            parent.embed_filters.append((embed, filter_))
        if embed.spread and child.aggregated:
            raise errors.parse_error(f"Aggregates inside the spread '{name}' are not supported",
                                     "Aggregate the columns of the spread resource from its own endpoint")
        if embed.spread and not to_one:
            raise ApiError(400, "PGRST119", f"A spread operation on '{name}' is not possible",
                           "'" + parent.table.name + "' and '" + target.name + "' do not form a many-to-one "
                           "or one-to-one relationship")
        return embed

    def relationship(self, table: Table, relation: str, hint: str | None
                     ) -> tuple[ForeignKey, bool, Table, tuple[Table, ForeignKey, ForeignKey] | None]:
        candidates: list[tuple[ForeignKey, bool, Table, Any]] = []
        for fk in table.fkeys_out:
            if relation in (fk.ref_table, fk.name) or (len(fk.columns) == 1 and relation == fk.columns[0]):
                candidates.append((fk, True, self.table(fk.ref_schema, fk.ref_table), None))
        for fk in table.fkeys_in:
            if relation in (fk.table, fk.name):
                candidates.append((fk, False, self.table(fk.schema, fk.table), None))
        if hint is not None:
            candidates = [c for c in candidates if hint in (c[0].name, *c[0].columns, *c[0].ref_columns)
                          or hint == c[2].name]
        if not candidates:
            candidates = self._many_to_many(table, relation, hint)
        if not candidates:
            raise ApiError(400, errors.NO_RELATIONSHIP,
                           f"Could not find a relationship between '{table.name}' and '{relation}' in the schema cache",
                           f"Searched for a foreign key relationship between '{table.name}' and '{relation}'"
                           + (f" using the hint '{hint}'" if hint else "") + " in the schema 'public', "
                           "but no matches were found.", None)
        if len(candidates) > 1:
            details = [{"cardinality": "many-to-one" if c[1] else "one-to-many", "relationship": c[0].name,
                        "embedding": f"{table.name} with {c[2].name}"} for c in candidates]
            raise ApiError(300, errors.AMBIGUOUS_RELATIONSHIP,
                           f"Could not embed because more than one relationship was found for '{table.name}' and "
                           f"'{relation}'", str(details),
                           f"Try changing '{relation}' to one of the following: "
                           + ", ".join(f"'{relation}!{c[0].name}'" for c in candidates))
        return candidates[0]

    def _many_to_many(self, table: Table, relation: str, hint: str | None) -> list[tuple[Any, ...]]:
        found = []
        for fk_in in table.fkeys_in:
            junction = self.cache.table(fk_in.schema, fk_in.table)
            if junction is None or (hint and hint != junction.name):
                continue
            for fk_out in junction.fkeys_out:
                if fk_out is fk_in or fk_out.ref_table != relation:
                    continue
                target = self.cache.table(fk_out.ref_schema, fk_out.ref_table)
                if target is not None:
                    found.append((fk_in, False, target, (junction, fk_in, fk_out)))
        return found

    # --- rpc ---------------------------------------------------------------------------------------------

    def function(self, schema: str, name: str, names: set[str]) -> Function:
        overloads = self.cache.function(schema, name)
        matching = [f for f in overloads if f.required <= names <= {a.name for a in f.args}]
        if not matching and len(overloads) == 1 and len(overloads[0].args) == 1 and not overloads[0].args[0].name:
            matching = overloads  # one unnamed json argument takes the whole body (PostgREST's single-object)
        if not matching:
            raise ApiError(404, errors.NO_FUNCTION,
                           f"Could not find the function {schema}.{name}({', '.join(sorted(names))}) in the "
                           "schema cache",
                           f"Searched for the function {schema}.{name} with parameters {', '.join(sorted(names))}"
                           " or with a single unnamed json/jsonb parameter, but no matches were found in the schema"
                           " cache.", None)
        if len(matching) > 1:
            raise ApiError(300, errors.AMBIGUOUS_FUNCTION,
                           "Could not choose the best candidate function between: "
                           + ", ".join(f"{f.schema}.{f.name}({', '.join(a.name + ' => ' + a.type for a in f.args)})"
                                       for f in matching), None,
                           "Try renaming the parameters or the function itself in the database so function "
                           "overloading can be resolved")
        return matching[0]

    def rpc(self, request: ApiRequest, body: Any) -> RpcPlan:
        if request.method in ("GET", "HEAD"):
            overloads = self.cache.function(request.schema, request.target)
            arg_names = {a.name for f in overloads for a in f.args}
            args = {k: v for k, v in request.params if k in arg_names}
            for key, value in request.params:
                if key not in arg_names:
                    request.filters.setdefault((), []).append(parse_filter(self._field(key), value))
        else:
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise ApiError(400, errors.INVALID_BODY, "Could not parse the request body as a JSON object",
                               "RPC arguments are a JSON object")
            args = body
            for key, value in request.params:
                request.filters.setdefault((), []).append(parse_filter(self._field(key), value))
        function = self.function(request.schema, request.target, set(args))
        if len(function.args) == 1 and not function.args[0].name and request.method == "POST":
            args = {"": body}
        node = None
        if function.return_table is not None:
            table = self.table(*function.return_table)
            node = self.read_node(request, table, request.select)
        elif request.filters or request.logic or request.order:
            raise errors.parse_error(f"Filters apply only to functions returning rows of a table ({function.name})")
        return RpcPlan(function, args, node)

    @staticmethod
    def _field(key: str) -> Field:
        from tuskbase.rest.parse import parse_field

        return parse_field(key)


def _legacy_count(item: SelectItem, table: Table) -> bool:
    """`rel(count)`: an embed whose only item is `count` (and no such column) counts its rows, allowed with
    aggregates off as PostgREST allows it. Anywhere else `count` is a column name: with aggregates off, no
    whole-table count or automatic grouping comes in through it."""
    return (item.kind == "column" and item.field is not None and item.field.name == "count"
            and not item.field.json_path and "count" not in table.columns)


def check_paths(planner: Planner, request: ApiRequest) -> None:
    """A filter, order or limit on an embedded resource the select does not embed is an error (PGRST108)."""
    for kind in (request.filters, request.logic, request.order, request.limit, request.offset):
        for path in kind:
            if path not in planner.paths:
                raise ApiError(400, errors.NOT_EMBEDDED,
                               f"'{'.'.join(path)}' is not an embedded resource in this request", None,
                               f"Verify that '{'.'.join(path)}' is included in the 'select' query parameter.")


def select_of(text: str | None) -> list[SelectItem] | None:
    return parse_select(text) if text else None


def check_payload_columns(table: Table, names: tuple[str, ...] | list[str]) -> list[Column]:
    columns = []
    for name in names:
        column = table.columns.get(name)
        if column is None:
            raise errors.no_payload_column(table.name, name)
        columns.append(column)
    return columns
