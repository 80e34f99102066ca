"""PostgREST's URL grammar, table-driven and without a database: each row is a query string and what
`parse_request` makes of it, written back in a compact form of the same grammar, or the error it raises."""

from __future__ import annotations

import pytest

from tuskbase.rest.errors import ApiError
from tuskbase.rest.parse import Field, Filter, Logic, OrderTerm, SelectItem, parse_request


def _field(field: Field) -> str:
    return field.name + "".join(arrow + key for arrow, key in field.json_path)


def _item(item: SelectItem) -> str:
    alias = f"{item.alias}:" if item.alias else ""
    if item.kind == "star":
        return "*"
    if item.kind == "column":
        assert item.field is not None
        return alias + _field(item.field) + (f"::{item.cast}" if item.cast else "")
    hint = f"!{item.hint}" if item.hint else ""
    inner = "!inner" if item.inner else ""
    prefix = "..." if item.kind == "spread" else alias
    return f"{prefix}{item.relation}{hint}{inner}(" + ",".join(map(_item, item.children)) + ")"


def _filter(node: Filter | Logic) -> str:
    if isinstance(node, Logic):
        return ("not." if node.negate else "") + node.operator + "(" + ",".join(map(_filter, node.children)) + ")"
    value = "(" + ",".join(node.value) + ")" if isinstance(node.value, tuple) else node.value
    modifier = f"({node.quantifier})" if node.quantifier else f"({node.language})" if node.language else ""
    return f"{'not.' if node.negate else ''}{_field(node.field)}.{node.operator}{modifier}.{value}"


def _order(term: OrderTerm) -> str:
    field = f"{term.relation}({_field(term.field)})" if term.relation else _field(term.field)
    return field + (".desc" if term.descending else ".asc") + (f".nulls{term.nulls}" if term.nulls else "")


def described(query: str) -> str:
    """The parsed request as `part: value` clauses, `;`-separated, in a fixed order; embedded paths prefixed."""
    request = parse_request("GET", "public", "todos", False, query, None, None, None)
    parts = []
    if request.select is not None:
        parts.append("select: " + ",".join(map(_item, request.select)))
    for what, by_path, render in (("where", request.filters, _filter), ("where", request.logic, _filter),
                                  ("order", request.order, _order)):
        for path, nodes in by_path.items():
            parts.append(f"{'.'.join(path) + ' ' if path else ''}{what}: " + " & ".join(map(render, nodes)))
    for what, by_path in (("limit", request.limit), ("offset", request.offset)):
        parts.extend(f"{'.'.join(path) + ' ' if path else ''}{what}: {n}" for path, n in by_path.items())
    if request.columns is not None:
        parts.append("columns: " + ",".join(request.columns))
    if request.on_conflict is not None:
        parts.append("on_conflict: " + ",".join(request.on_conflict))
    return "; ".join(parts)


PARSED = [
    ("select=id,title", "select: id,title"),
    ("select=id,lists(title)", "select: id,lists(title)"),
    ("select=*,owner:profiles!owner_id(name)", "select: *,owner:profiles!owner_id(name)"),
    ("select=t:title::text", "select: t:title::text"),
    ("select=data->a->>b", "select: data->a->>b"),
    ("select=...lists(title)", "select: ...lists(title)"),
    ("select=id,lists!inner(id)", "select: id,lists!inner(id)"),
    ("select=id&select=title", "select: title"),  # the last one wins, as in PostgREST
    ("done=eq.true", "where: done.eq.true"),
    ("title=like.*milk*", "where: title.like.*milk*"),
    ("id=in.(1,2,3)", "where: id.in.(1,2,3)"),
    ('title=in.("a,b",c)', "where: title.in.(a,b,c)"),
    ("done=not.is.null", "where: not.done.is.null"),
    ("title=ilike(any).{a*,b*}", "where: title.ilike(any).{a*,b*}"),
    ("body=fts(english).milk", "where: body.fts(english).milk"),
    ("data->>a=eq.1", "where: data->>a.eq.1"),
    ("id=gt.1&id=lt.9", "where: id.gt.1 & id.lt.9"),
    ("or=(done.eq.true,title.eq.x)", "where: or(done.eq.true,title.eq.x)"),
    ("and=(id.gt.1,not.or(id.eq.3,id.eq.4))", "where: and(id.gt.1,not.or(id.eq.3,id.eq.4))"),
    ("not.and=(a.eq.1,b.eq.2)", "where: not.and(a.eq.1,b.eq.2)"),
    ("lists.title=eq.x", "lists where: title.eq.x"),
    ("lists.or=(a.eq.1,b.eq.2)", "lists where: or(a.eq.1,b.eq.2)"),
    ("order=title.desc.nullslast,id", "order: title.desc.nullslast & id.asc"),
    ("order=lists(title).asc", "order: lists(title).asc"),
    ("lists.order=id.desc", "lists order: id.desc"),
    ("limit=10&offset=5", "limit: 10; offset: 5"),
    ("lists.limit=2", "lists limit: 2"),
    ("columns=id,title", "columns: id,title"),
    ("on_conflict=id", "on_conflict: id"),
]

REFUSED = [
    ("title=eq", '"eq" is not a valid filter'),
    ("select=id,", 'Empty item in select "id,"'),
    ("order=title.sideways", '"sideways" is not a valid ordering'),
    ("limit=x", '"x" is not a valid limit'),
    ("id=foo.1", 'Unknown operator "foo"'),
    ("or=(a.eq.1", '"(a.eq.1" is not a valid logic tree'),
    ("select=lists(", 'Unbalanced quotes or parentheses in "lists("'),
    ("done=is.maybe", '"maybe" is not a valid value for is'),
    ("select=" + "a(" * 20 + "b" + ")" * 20, "Query string nests too deep"),
]


@pytest.mark.parametrize(("query", "expected"), PARSED, ids=[q for q, _ in PARSED])
def test_the_grammar_parses(query: str, expected: str) -> None:
    assert described(query) == expected


@pytest.mark.parametrize(("query", "message"), REFUSED, ids=[q for q, _ in REFUSED])
def test_the_grammar_refuses_as_postgrest_does(query: str, message: str) -> None:
    with pytest.raises(ApiError) as refused:
        described(query)
    assert (refused.value.status, refused.value.code) == (400, "PGRST100")
    assert message in str(refused.value)
