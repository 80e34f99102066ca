"""The OpenAPI (Swagger 2.0, as PostgREST serves) description of the exposed tables, views and functions."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from tuskbase.schema import Column, SchemaCache

_TYPES = {"N": "number", "B": "boolean", "A": "array"}
_INTEGERS = {"integer", "bigint", "smallint"}


def _property(column: Column) -> dict[str, Any]:
    if column.type in _INTEGERS:
        kind = "integer"
    elif column.type in ("json", "jsonb"):
        kind = "object"
    else:
        kind = _TYPES.get(column.category, "string")
    prop: dict[str, Any] = {"type": kind, "format": column.type}
    if column.default is not None:
        prop["default"] = column.default
    return prop


def document(cache: SchemaCache, schema: str, base_url: str) -> bytes:
    parts = urlsplit(base_url)
    definitions: dict[str, Any] = {}
    paths: dict[str, Any] = {"/": {"get": {"tags": ["Introspection"], "summary": "OpenAPI description (this document)",
                                           "produces": ["application/openapi+json"],
                                           "responses": {"200": {"description": "OK"}}}}}
    for (table_schema, name), table in sorted(cache.tables.items()):
        if table_schema != schema:
            continue
        definitions[name] = {
            "type": "object",
            "required": [c.name for c in table.columns.values() if not c.nullable and c.default is None
                         and not c.generated],
            "properties": {c.name: _property(c) for c in table.columns.values()},
        }
        if table.comment:
            definitions[name]["description"] = table.comment
        ref = {"$ref": f"#/definitions/{name}"}
        ok = {"description": "OK", "schema": {"type": "array", "items": ref}}
        operations: dict[str, Any] = {"get": {"tags": [name], "responses": {"200": ok, "206": {"description":
                                                                                              "Partial Content"}}}}
        if table.kind in ("r", "p", "v", "f"):
            body = [{"name": "body", "in": "body", "schema": ref}]
            operations["post"] = {"tags": [name], "parameters": body, "responses": {"201": {"description": "Created"}}}
            operations["patch"] = {"tags": [name], "parameters": body,
                                   "responses": {"204": {"description": "No Content"}}}
            operations["delete"] = {"tags": [name], "responses": {"204": {"description": "No Content"}}}
        paths[f"/{name}"] = operations
    for (fn_schema, name), overloads in sorted(cache.functions.items()):
        if fn_schema != schema:
            continue
        fn = overloads[0]
        args = {"type": "object", "required": sorted(fn.required),
                "properties": {a.name: {"type": "string", "format": a.type} for a in fn.args if a.name}}
        paths[f"/rpc/{name}"] = {
            "post": {"tags": ["(rpc) " + name], "summary": fn.comment or "",
                     "parameters": [{"name": "args", "in": "body", "required": True, "schema": args}],
                     "responses": {"200": {"description": "OK"}}},
        }
    spec = {
        "swagger": "2.0",
        "info": {"title": "Tuskbase REST API", "version": "1", "description": f"Schema {schema}"},
        "host": parts.netloc,
        "basePath": parts.path or "/",
        "schemes": [parts.scheme or "http"],
        "consumes": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
        "produces": ["application/json", "application/vnd.pgrst.object+json", "text/csv"],
        "paths": paths,
        "definitions": definitions,
    }
    return json.dumps(spec).encode()
