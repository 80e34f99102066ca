"""Stage 1: the request as PostgREST's URL grammar and headers describe it, checked for syntax only.

Nothing here knows the schema: `plan` checks every name against the schema cache afterwards.
Grammar: https://postgrest.org/en/stable/references/api/tables_views.html
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as _field
from urllib.parse import parse_qsl

from tuskbase.rest.errors import ApiError, parse_error

OPERATORS = frozenset({
    "eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch", "in", "is", "isdistinct",
    "fts", "plfts", "phfts", "wfts", "cs", "cd", "ov", "sl", "sr", "nxl", "nxr", "adj",
})
FTS_OPERATORS = frozenset({"fts", "plfts", "phfts", "wfts"})
QUANTIFIABLE = frozenset({"eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch"})
IS_VALUES = frozenset({"null", "not_null", "true", "false", "unknown"})
RESERVED = frozenset({"select", "columns", "on_conflict", "order", "limit", "offset", "or", "and"})
MAX_DEPTH = 16

_NAME = r'(?:"(?:[^"\\]|\\.)+"|[^\s,()!:."\\>-][^\s,()!:."\\>]*(?:-(?!>)[^\s,()!:."\\>]*)*)'
_JSON_STEP = re.compile(r"(->>?)(" + r'"(?:[^"\\]|\\.)*"|[^-\s,():."!]+' + r")")
_FIELD = re.compile(r"(" + _NAME + r")((?:->>?(?:\"(?:[^\"\\]|\\.)*\"|[^-\s,():.\"!]+))*)")
_RANGE = re.compile(r"^\s*(\d{1,18})-(\d{0,18})\s*$")


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    json_path: tuple[tuple[str, str], ...] = ()  # (("->", "a"), ("->>", "b"))

    @property
    def default_alias(self) -> str:
        return self.json_path[-1][1] if self.json_path else self.name


@dataclass(slots=True)
class SelectItem:
    kind: str  # "star" | "column" | "aggregate" | "embed" | "spread"
    field: Field | None = None  # None for `count()`, which counts rows
    alias: str | None = None
    cast: str | None = None
    relation: str | None = None
    hint: str | None = None
    inner: bool = False
    children: list[SelectItem] = _field(default_factory=list)
    function: str | None = None  # aggregate: avg | count | max | min | sum
    output_cast: str | None = None  # aggregate: `amount.avg()::int` casts the result
    legacy_count: bool = False  # `todos(count)`: PostgREST's older count, allowed with aggregates off


@dataclass(frozen=True, slots=True)
class Filter:
    field: Field
    operator: str
    value: str | tuple[str, ...]
    negate: bool = False
    quantifier: str | None = None  # any | all
    language: str | None = None  # fts config


@dataclass(frozen=True, slots=True)
class Logic:
    operator: str  # and | or
    negate: bool
    children: tuple[Filter | Logic, ...]


@dataclass(frozen=True, slots=True)
class OrderTerm:
    field: Field
    descending: bool = False
    nulls: str | None = None  # first | last
    relation: str | None = None  # order=lists(title): a column of an embedded to-one resource


@dataclass(slots=True)
class Prefer:
    return_: str | None = None  # minimal | headers-only | representation
    count: str | None = None  # exact | planned | estimated
    resolution: str | None = None  # merge-duplicates | ignore-duplicates
    missing: str | None = None  # default
    tx: str | None = None  # commit | rollback
    handling: str | None = None  # strict | lenient
    max_affected: int | None = None  # with handling=strict: PATCH / DELETE touching more rows fail
    applied: tuple[str, ...] = ()


@dataclass(slots=True)
class ApiRequest:
    method: str
    schema: str
    target: str
    is_rpc: bool = False
    select: list[SelectItem] | None = None
    filters: dict[tuple[str, ...], list[Filter]] = _field(default_factory=dict)
    logic: dict[tuple[str, ...], list[Logic]] = _field(default_factory=dict)
    order: dict[tuple[str, ...], list[OrderTerm]] = _field(default_factory=dict)
    limit: dict[tuple[str, ...], int] = _field(default_factory=dict)
    offset: dict[tuple[str, ...], int] = _field(default_factory=dict)
    columns: tuple[str, ...] | None = None
    on_conflict: tuple[str, ...] | None = None
    params: list[tuple[str, str]] = _field(default_factory=list)  # GET rpc arguments candidates
    prefer: Prefer = _field(default_factory=Prefer)
    accept: str = "json"  # json | single | csv
    strip_nulls: bool = False


# --- query string -----------------------------------------------------------------------------------------


def parse_request(method: str, schema: str, target: str, is_rpc: bool, query: str, prefer: str | None,
                  accept: str | None, range_header: str | None) -> ApiRequest:
    request = ApiRequest(method=method, schema=schema, target=target, is_rpc=is_rpc)
    request.prefer = parse_prefer(prefer)
    request.accept, request.strip_nulls = parse_accept(accept)
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError) as error:
        raise parse_error("Invalid query string encoding", str(error)) from None
    for key, value in pairs:
        _parse_pair(request, key, value)
    if range_header and method in ("GET", "HEAD"):
        match = _RANGE.match(range_header.removeprefix("items="))
        if match is None:
            raise ApiError(416, "PGRST103", "Requested range not satisfiable", f"Invalid Range header {range_header!r}")
        lower = int(match.group(1))
        upper = int(match.group(2)) if match.group(2) else None
        if upper is not None and upper < lower:
            raise ApiError(416, "PGRST103", "Requested range not satisfiable",
                           "The lower boundary must be lower than or equal to the upper boundary")
        request.offset.setdefault((), lower)
        if upper is not None:
            size = upper - lower + 1
            request.limit[()] = min(size, request.limit.get((), size))
    return request


def _parse_pair(request: ApiRequest, key: str, value: str) -> None:
    if "\x00" in key or "\x00" in value:
        raise parse_error("Query string contains a NUL byte")
    if key == "select":
        request.select = parse_select(value)
        return
    if key == "columns":
        request.columns = tuple(_split_names(value, "columns"))
        return
    if key == "on_conflict":
        request.on_conflict = tuple(_split_names(value, "on_conflict"))
        return
    parts = key.split(".")
    last = parts[-1]
    if last in ("or", "and"):
        negate = len(parts) >= 2 and parts[-2] == "not"
        path = tuple(parts[:-2] if negate else parts[:-1])
        request.logic.setdefault(path, []).append(parse_logic(last, negate, value))
        return
    if last == "order" and len(parts) >= 1:
        request.order[tuple(parts[:-1])] = parse_order(value)
        return
    if last in ("limit", "offset"):
        try:
            number = int(value)
        except ValueError:
            raise parse_error(f'"{value}" is not a valid {last}') from None
        if number < 0 or number > 10**15:
            raise parse_error(f'"{value}" is not a valid {last}')
        getattr(request, last)[tuple(parts[:-1])] = number
        return
    if request.is_rpc and len(parts) == 1 and "->" not in key:
        request.params.append((key, value))  # an argument or a filter: plan decides with the function's signature
        return
    path, column = tuple(parts[:-1]), parse_field(last)
    request.filters.setdefault(path, []).append(parse_filter(column, value))


def _split_names(value: str, what: str) -> list[str]:
    names = []
    for item in _split_top(value):
        name = _unquote_name(item.strip())
        if not name:
            raise parse_error(f"Empty name in {what}")
        names.append(name)
    return names


def parse_field(text: str) -> Field:
    match = _FIELD.fullmatch(text.strip())
    if match is None:
        raise parse_error(f'"{text}" is not a valid column name or JSON path')
    name = _unquote_name(match.group(1))
    steps = tuple((op, _unquote_name(key)) for op, key in _JSON_STEP.findall(match.group(2)))
    return Field(name, steps)


def _unquote_name(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def parse_filter(column: Field, value: str) -> Filter:
    negate = False
    if value.startswith("not."):
        negate, value = True, value[4:]
    match = re.match(r"([a-z]+)(?:\(([^)]*)\))?\.", value)
    if match is None:
        raise parse_error(f'"{value}" is not a valid filter', "Filters look like eq.value or not.in.(a,b)")
    operator, modifier = match.group(1), match.group(2)
    rest = value[match.end():]
    if operator not in OPERATORS:
        raise parse_error(f'Unknown operator "{operator}"', f"Operators are {', '.join(sorted(OPERATORS))}")
    quantifier = language = None
    if modifier is not None:
        if operator in FTS_OPERATORS:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", modifier):
                raise parse_error(f'"{modifier}" is not a valid text search configuration')
            language = modifier
        elif operator in QUANTIFIABLE and modifier in ("any", "all"):
            quantifier = modifier
        else:
            raise parse_error(f'"{operator}({modifier})" is not a valid operator')
    if operator == "in":
        return Filter(column, operator, parse_list(rest), negate)
    if operator == "is" and rest.lower() not in IS_VALUES:
        raise parse_error(f'"{rest}" is not a valid value for is', "Use null, not_null, true, false or unknown")
    return Filter(column, operator, rest, negate, quantifier, language)


def parse_list(text: str) -> tuple[str, ...]:
    if not (text.startswith("(") and text.endswith(")")):
        raise parse_error(f'"{text}" is not a list', "Lists look like (a,b,\"c,d\")")
    inner = text[1:-1]
    if not inner:
        return ()
    return tuple(_unquote_value(item) for item in _split_top(inner, parens=False))


def _unquote_value(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _split_top(text: str, parens: bool = True) -> list[str]:
    """Split at commas that are outside double quotes (and parentheses)."""
    items, depth, quoted, escaped, start = [], 0, False, False, 0
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif parens and char == "(":
            depth += 1
            if depth > MAX_DEPTH:
                raise parse_error("Query string nests too deep")
        elif parens and char == ")":
            depth -= 1
            if depth < 0:
                raise parse_error(f'Unbalanced parenthesis in "{text}"')
        elif char == "," and depth == 0:
            items.append(text[start:index])
            start = index + 1
    if quoted or depth != 0:
        raise parse_error(f'Unbalanced quotes or parentheses in "{text}"')
    items.append(text[start:])
    return items


def parse_logic(operator: str, negate: bool, value: str, depth: int = 0) -> Logic:
    if depth > MAX_DEPTH:
        raise parse_error("Logic tree nests too deep")
    if not (value.startswith("(") and value.endswith(")")) or len(value) < 3:
        raise parse_error(f'"{value}" is not a valid logic tree', "Logic trees look like (a.eq.1,b.gt.2)")
    children: list[Filter | Logic] = []
    for item in _split_top(value[1:-1]):
        item = item.strip()
        match = re.match(r"(not\.)?(and|or)\(", item)
        if match:
            children.append(parse_logic(match.group(2), bool(match.group(1)), item[match.end() - 1:], depth + 1))
            continue
        name, dot, expression = _split_field(item)
        if not dot:
            raise parse_error(f'"{item}" is not a valid filter in a logic tree')
        filter_ = parse_filter(parse_field(name), expression)
        if isinstance(filter_.value, str):
            filter_ = Filter(filter_.field, filter_.operator, _unquote_value(filter_.value), filter_.negate,
                             filter_.quantifier, filter_.language)
        children.append(filter_)
    return Logic(operator, negate, tuple(children))


def _split_field(item: str) -> tuple[str, str, str]:
    if item.startswith('"'):
        end = item.find('"', 1)
        if end < 0:
            raise parse_error(f'Unbalanced quotes in "{item}"')
        name, rest = item[: end + 1], item[end + 1:]
        head, dot, tail = rest.partition(".")
        return name + head, dot, tail
    return item.partition(".")


def parse_order(value: str) -> list[OrderTerm]:
    terms = []
    for item in _split_top(value):
        head, _, modifiers = item.strip().partition(").")
        related = bool(modifiers) and "(" in head  # lists(title).desc: do not split inside the parentheses
        pieces = [head + ")", *modifiers.split(".")] if related else item.strip().split(".")
        if not pieces[0]:
            raise parse_error(f'"{value}" is not a valid order')
        descending, nulls = False, None
        for modifier in pieces[1:]:
            if modifier in ("asc", "desc"):
                descending = modifier == "desc"
            elif modifier in ("nullsfirst", "nullslast"):
                nulls = modifier[5:]
            else:
                raise parse_error(f'"{modifier}" is not a valid ordering', "Use asc, desc, nullsfirst or nullslast")
        embedded = re.fullmatch(r"([^()]+)\(([^()]+)\)", pieces[0])
        if embedded:
            terms.append(OrderTerm(parse_field(embedded.group(2)), descending, nulls,
                                   _unquote_name(embedded.group(1))))
        else:
            terms.append(OrderTerm(parse_field(pieces[0]), descending, nulls))
    return terms


# --- select ----------------------------------------------------------------------------------------------

_EMBED = re.compile(r"^(?:(" + _NAME + r"):)?(" + _NAME + r")((?:![A-Za-z0-9_$]+)*)\($")


def parse_select(text: str, depth: int = 0) -> list[SelectItem]:
    if depth > MAX_DEPTH:
        raise parse_error("select nests too deep")
    items: list[SelectItem] = []
    for raw in _split_top(text):
        raw = raw.strip()
        if not raw:
            if text.strip() == "":
                continue
            raise parse_error(f'Empty item in select "{text}"')
        items.append(_parse_select_item(raw, depth))
    return items


AGGREGATES = ("avg", "count", "max", "min", "sum")
_CAST = r"[A-Za-z_][A-Za-z0-9_ ]{0,62}(?:\[\])?"
# `alias:count()::cast`, or `alias:column::input_cast.sum()::output_cast` (PostgREST's aggregate grammar).
_COUNT_ROWS = re.compile(r"^(?:(" + _NAME + r"):(?!:))?count\(\)(?:::(" + _CAST + r"))?$")
_AGGREGATE = re.compile(r"^(.+)\.(" + "|".join(AGGREGATES) + r")\(\)(?:::(" + _CAST + r"))?$")


def _parse_aggregate(raw: str) -> SelectItem | None:
    match = _COUNT_ROWS.match(raw)
    if match:
        alias = _unquote_name(match.group(1)) if match.group(1) else None
        return SelectItem("aggregate", alias=alias, function="count", output_cast=match.group(2))
    match = _AGGREGATE.match(raw)
    if match is None:
        return None
    column = _parse_column(match.group(1))
    return SelectItem("aggregate", field=column.field, alias=column.alias, cast=column.cast,
                      function=match.group(2), output_cast=match.group(3))


def _parse_select_item(raw: str, depth: int) -> SelectItem:
    if raw == "*":
        return SelectItem("star")
    aggregate = _parse_aggregate(raw)
    if aggregate is not None:
        return aggregate
    if raw.endswith(")") and "(" in raw:
        head = raw[: raw.index("(") + 1]
        body = raw[len(head):-1]
        spread = head.startswith("...")
        if spread:
            head = head[3:]
        match = _EMBED.match(head)
        if match is None:
            raise parse_error(f'"{raw}" is not a valid embedding', "Embeddings look like alias:table!hint(columns)")
        alias = _unquote_name(match.group(1)) if match.group(1) else None
        relation = _unquote_name(match.group(2))
        hint, inner = None, False
        for modifier in filter(None, match.group(3).split("!")):
            if modifier == "inner":
                inner = True
            elif modifier == "left":
                inner = False
            elif hint is None:
                hint = modifier
            else:
                raise parse_error(f'"{raw}" has more than one hint')
        children = parse_select(body, depth + 1) if body.strip() else []
        return SelectItem("spread" if spread else "embed", alias=alias, relation=relation, hint=hint, inner=inner,
                          children=children)
    return _parse_column(raw)


def _parse_column(raw: str) -> SelectItem:
    alias = None
    cast = None
    text = raw
    if "::" in text:
        text, _, cast = text.rpartition("::")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_ ]{0,62}(\[\])?", cast):
            raise parse_error(f'"{cast}" is not a valid cast')
    alias_match = re.match(r"^(" + _NAME + r"):(?!:)", text)
    if alias_match:
        alias = _unquote_name(alias_match.group(1))
        text = text[alias_match.end():]
    return SelectItem("column", field=parse_field(text), alias=alias, cast=cast)


# --- headers ---------------------------------------------------------------------------------------------


def parse_prefer(header: str | None) -> Prefer:
    prefer = Prefer()
    if not header:
        return prefer
    applied = []
    for token in header.split(","):
        name, _, value = token.strip().partition("=")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "return" and value in ("minimal", "headers-only", "representation"):
            prefer.return_ = value
        elif name == "count" and value in ("exact", "planned", "estimated"):
            prefer.count = value
        elif name == "resolution" and value in ("merge-duplicates", "ignore-duplicates"):
            prefer.resolution = value
        elif name == "missing" and value == "default":
            prefer.missing = value
        elif name == "tx" and value in ("commit", "rollback"):
            prefer.tx = value
        elif name == "handling" and value in ("strict", "lenient"):
            prefer.handling = value
        elif name == "max-affected" and value.isascii() and value.isdigit() and len(value) < 16:
            prefer.max_affected = int(value)
        else:
            if prefer.handling == "strict" or "handling=strict" in header.replace(" ", "").lower():
                raise ApiError(400, "PGRST122", f"Invalid preferences given with handling=strict: {token.strip()}")
            continue  # PostgREST ignores unknown preferences unless handling=strict
        applied.append(f"{name}={value}")
    prefer.applied = tuple(applied)
    return prefer


def parse_accept(header: str | None) -> tuple[str, bool]:
    """(kind, strip_nulls) for the first acceptable media type in the Accept header."""
    if not header:
        return "json", False
    for item in header.split(","):
        media, *params = [p.strip().lower() for p in item.split(";")]
        strip = "nulls=stripped" in params
        if media in ("application/json", "*/*", "application/*", "application/vnd.pgrst.array+json"):
            return "json", strip
        if media == "application/vnd.pgrst.object+json":
            return "single", strip
        if media == "text/csv":
            return "csv", False
        if media == "application/openapi+json":
            return "openapi", False
    raise ApiError(406, "PGRST107", "None of these media types are available: " + header[:200])
