"""The REST pipeline, as one raw ASGI callable mounted at /rest/v1: parse -> plan -> query -> run -> respond.

The hot path (a read seen before) is: verify the token through the claims cache, find the compiled
statement by (method, path, query string, negotiation headers), run it in the request transaction, frame
the bytes Postgres rendered. Parsing, planning and SQL rendering happen once per distinct URL and schema
version. Each stage's time goes into `Server-Timing` on the first (uncached) answer.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from tuskbase import caller as callers
from tuskbase import db
from tuskbase.caller import Caller, CallerError
from tuskbase.rest import batch, errors, openapi, parse, persisted, plan, query, respond
from tuskbase.rest.errors import ApiError
from tuskbase.rest.pipeline import RestRequest
from tuskbase.rest.respond import JSON, Answer
from tuskbase.schema import SchemaHolder
from tuskbase.tokens import ClaimsCache

log = logging.getLogger("tuskbase.rest")
PREFIX = "/rest/v1"
READ_METHODS = ("GET", "HEAD")
# What a request that names no valid caller answers (PostgREST's codes; all 401).
JWT_CODES = {"missing": errors.JWT_MISSING, "invalid": errors.JWT_INVALID, "claims": errors.JWT_CLAIMS}
WRITE_METHODS = ("POST", "PATCH", "DELETE")


@dataclass(slots=True)
class Compiled:
    """A read ready to run: everything that depends only on the URL and negotiation headers."""

    statement: query.Statement
    readonly: bool
    single: bool  # application/vnd.pgrst.object+json
    csv: bool
    offset: int
    counted: bool
    applied: bytes | None
    object_result: bool  # an RPC returning one composite or scalar value: the body is not an array
    void: bool
    timing: bytes
    planned: query.Statement | None = None  # count=planned / estimated: EXPLAIN's row estimate
    estimated_limit: int = 0  # count=estimated: below this many planned rows, count exactly
    exact: query.Statement | None = None


class RestService:
    def __init__(self, settings: Any, pool: asyncpg.Pool, holder: SchemaHolder, claims: ClaimsCache) -> None:
        self.settings = settings
        self.pool = pool
        self.holder = holder
        self.claims = claims
        self.schemas = settings.rest_schema_list
        self.max_body = settings.max_body_bytes
        self.compress_min = settings.rest_compress_min_bytes
        self.retry_after = str(settings.unavailable_retry_after).encode()
        self.max_query_bytes = settings.rest_max_query_bytes
        self.max_query_terms = settings.rest_max_query_terms
        self.plans: dict[tuple[Any, ...], Compiled] = {}
        self.plan_limit = settings.rest_plan_cache_size
        self.persisted = persisted.Registry(pool)
        holder.listeners.append(self.forget)

    def forget(self, _cache: Any = None) -> None:
        """The schema changed (or a persisted query was registered): drop what was compiled against it."""
        self.plans.clear()
        self.persisted.forget()

    # --- ASGI ----------------------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        method = scope["method"]
        try:
            answer = await self.answer(scope, receive, method, headers)
        except ApiError as err:
            answer = self.error(err)
        except Exception as error:
            if db.is_unavailable(error):  # met outside a DatabaseErrors block (a batch's BEGIN, a persisted query)
                answer = self.error(errors.unavailable(error))
            else:  # a bug must still answer in the wire format, and be logged
                log.exception("REST request failed: %s %s", method, scope.get("path"))
                answer = respond.error(ApiError(500, "PGRST000", "Internal error"))
        status, out, body = respond.finish(answer, method, headers, self.compress_min)
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    def error(self, err: ApiError) -> Answer:
        answer = respond.error(err)
        if err.status == 503:  # the database is starting, stopping or unreachable: worth retrying soon
            answer.headers.append((b"retry-after", self.retry_after))
        return answer

    async def answer(self, scope: dict[str, Any], receive: Any, method: str, headers: dict[bytes, bytes]) -> Answer:
        # Mounted, Litestar passes the path below /rest/v1; dispatched directly (routes.py), the whole path.
        path = scope["path"].removeprefix(PREFIX).strip("/")
        if method == "OPTIONS":
            return self.preflight(headers)
        try:
            caller = callers.identify_raw(self.claims, headers)
        except CallerError as error:
            raise ApiError(401, JWT_CODES[error.kind], str(error), None, None,
                           [(b"www-authenticate", b'Bearer error="invalid_token"')]) from None
        if method in READ_METHODS and path and not path.startswith("persisted/"):
            key = (method, path, scope["query_string"], headers.get(b"accept"), headers.get(b"prefer"),
                   headers.get(b"accept-profile"), headers.get(b"range"))
            compiled = self.plans.get(key)
            if compiled is None:
                compiled = self.compiled_read(method, path, scope["query_string"], headers)
            return await self.run_read(compiled, caller)
        if not path:
            if method not in READ_METHODS:
                raise ApiError(405, errors.UNSUPPORTED_METHOD, f"Unsupported HTTP method: {method}")
            return self.openapi(headers)
        if path == "batch" and method == "POST":
            return await batch.run(self, caller, await self.body(receive, headers))
        if path == "persisted" or path.startswith("persisted/"):
            name = path.removeprefix("persisted").strip("/")
            return await persisted.run(self, self.persisted, RestRequest(method, name, scope["query_string"], headers),
                                       caller, receive)
        if method not in WRITE_METHODS and method != "PUT":
            raise ApiError(405, errors.UNSUPPORTED_METHOD, f"Unsupported HTTP method: {method}")
        body = await self.body(receive, headers)
        return await self.write(RestRequest(method, path, scope["query_string"], headers, body), caller)

    def preflight(self, headers: dict[bytes, bytes]) -> Answer:
        return Answer(200, b"", [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-allow-methods", b"GET, POST, PATCH, PUT, DELETE, OPTIONS, HEAD"),
            (b"access-control-allow-headers", headers.get(b"access-control-request-headers", b"*")),
            (b"access-control-max-age", b"86400"),
        ])

    async def body(self, receive: Any, headers: dict[bytes, bytes]) -> bytes:
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise self.too_large()
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, errors.INVALID_BODY, "The client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise self.too_large()
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    def too_large(self) -> ApiError:
        return ApiError(413, errors.INVALID_BODY, "Payload Too Large",
                        f"The request body is larger than the limit of {self.max_body} bytes")

    # --- negotiation ---------------------------------------------------------------------------------------

    def schema_of(self, headers: dict[bytes, bytes], write: bool) -> str:
        raw = headers.get(b"content-profile" if write else b"accept-profile")
        if raw is None:
            return self.schemas[0]
        schema = raw.decode("latin-1").strip()
        if schema not in self.schemas:
            raise ApiError(406, errors.INVALID_SCHEMA, "Invalid schema: " + schema,
                           None, "Only the following schemas are exposed: " + ", ".join(self.schemas))
        return schema

    @staticmethod
    def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
        value = headers.get(name)
        return value.decode("latin-1") if value is not None else None

    def check_query_size(self, query_string: bytes) -> None:
        """Refuse a query string too large to parse on the event loop, before parsing it: its length, then its
        terms (every parameter and every comma, literal or percent-encoded, counts: never fewer than the
        grammar will meet)."""
        if len(query_string) > self.max_query_bytes:
            raise errors.query_too_large(f"The query string is longer than {self.max_query_bytes} bytes",
                                         "The limit is the setting TUSKBASE_REST_MAX_QUERY_BYTES")
        terms = 1 + query_string.count(b"&") + query_string.count(b",") + query_string.count(b"%2C") \
            + query_string.count(b"%2c")
        if terms > self.max_query_terms:
            raise errors.query_too_large(f"The query string has more than {self.max_query_terms} terms",
                                         "Parameters and the comma-separated items inside them count; the limit "
                                         "is the setting TUSKBASE_REST_MAX_QUERY_TERMS")

    def parse(self, method: str, path: str, query_string: bytes, headers: dict[bytes, bytes], write: bool
              ) -> parse.ApiRequest:
        schema = self.schema_of(headers, write)
        is_rpc = path.startswith("rpc/")
        target = path[4:] if is_rpc else path
        if not target or "/" in target:
            raise ApiError(404, errors.NO_TABLE, f"Could not find the path /{path}")
        self.check_query_size(query_string)
        try:
            query_text = query_string.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.parse_error("The query string is not UTF-8") from None
        return parse.parse_request(method, schema, target, is_rpc, query_text, self._header(headers, b"prefer"),
                                   self._header(headers, b"accept"), self._header(headers, b"range"))

    # --- reads ---------------------------------------------------------------------------------------------

    def compiled_read(self, method: str, path: str, query_string: bytes, headers: dict[bytes, bytes]) -> Compiled:
        """The compiled read for a URL and its negotiation headers, from the plan cache or made and kept."""
        key = (method, path, query_string, headers.get(b"accept"), headers.get(b"prefer"),
               headers.get(b"accept-profile"), headers.get(b"range"))
        compiled = self.plans.get(key)
        if compiled is None:
            compiled = self.compile_read(method, path, query_string, headers)
            if len(self.plans) >= self.plan_limit:
                self.plans.clear()
            self.plans[key] = compiled
        return compiled

    def check_read(self, path: str, query_string: bytes) -> None:
        self.compiled_read("GET", path, query_string, {})

    def compile_read(self, method: str, path: str, query_string: bytes, headers: dict[bytes, bytes]) -> Compiled:
        started = time.perf_counter()
        request = self.parse(method, path, query_string, headers, write=False)
        if request.accept == "openapi":
            raise ApiError(406, "PGRST107", "The OpenAPI document is served at the root of /rest/v1")
        parsed = time.perf_counter()
        planner = plan.Planner(self.holder.cache, self.settings.rest_max_rows, self.settings.rest_aggregates_enabled)
        counted = request.prefer.count == "exact"
        planned_count = None
        applied = [p for p in request.prefer.applied if p.startswith("count=")]
        if request.is_rpc:
            rpc_plan = planner.rpc(request, None)
            planned = time.perf_counter()
            statement = query.rpc(rpc_plan, method, counted, request.strip_nulls)
            fn = rpc_plan.function
            object_result = rpc_plan.node is None or not fn.returns_set
            void = fn.returns_void
        else:
            table = planner.table(request.schema, request.target)
            node = planner.read_node(request, table, request.select)
            plan.check_paths(planner, request)
            planned = time.perf_counter()
            statement = query.read(node, counted, request.strip_nulls)
            object_result = void = False
            if request.prefer.count in ("planned", "estimated"):
                planned_count = query.planned_count(node)
                if request.prefer.count == "estimated":
                    counted = True
                    statement = query.read(node, False, request.strip_nulls)
        rendered = time.perf_counter()
        timing = (f"parse;dur={(parsed - started) * 1000:.2f}, plan;dur={(planned - parsed) * 1000:.2f}, "
                  f"query;dur={(rendered - planned) * 1000:.2f}").encode()
        compiled = Compiled(statement, True, request.accept == "single", request.accept == "csv",
                            request.offset.get((), 0), counted, ", ".join(applied).encode() or None,
                            object_result, void, timing, planned_count)
        if request.prefer.count == "estimated" and not request.is_rpc:
            compiled.estimated_limit = self.settings.rest_max_rows or 1000
            compiled.exact = query.read(node, True, request.strip_nulls)
        return compiled

    async def run_read(self, compiled: Compiled, caller: Caller, conn: Any = None) -> Answer:
        statement = compiled.statement
        started = time.perf_counter()
        with errors.DatabaseErrors(caller.authenticated):
            if conn is not None:  # a sub-request of a batch, inside the batch's transaction
                body, rows, total = await conn.fetchrow(statement.sql, *statement.params)
            elif compiled.planned is None:
                # One statement: its own implicit transaction, no BEGIN/COMMIT round trips.
                async with callers.session(self.pool, caller, readonly=compiled.readonly) as conn:
                    body, rows, total = await conn.fetchrow(statement.sql, *statement.params)
            else:
                async with callers.session(self.pool, caller, readonly=compiled.readonly) as conn, conn.transaction():
                    body, rows, total = await self._planned(conn, compiled)
        answer = self.read_answer(compiled, body, rows, total)
        answer.headers.append((b"server-timing", compiled.timing
                               + f", db;dur={(time.perf_counter() - started) * 1000:.2f}".encode()))
        return answer

    @staticmethod
    async def _planned(conn: Any, compiled: Compiled) -> tuple[str, int, int | None]:
        assert compiled.planned is not None
        explained = await conn.fetchval(compiled.planned.sql, *compiled.planned.params)
        estimate = int(json.loads(explained)[0]["Plan"]["Plan Rows"])
        if compiled.estimated_limit and estimate < compiled.estimated_limit:
            exact = compiled.exact
            return tuple(await conn.fetchrow(exact.sql, *exact.params))  # type: ignore[return-value]
        body, rows, _ = await conn.fetchrow(compiled.statement.sql, *compiled.statement.params)
        return body, rows, estimate

    def read_answer(self, compiled: Compiled, body: str | None, rows: int, total: int | None) -> Answer:
        headers: list[tuple[bytes, bytes]] = [(b"content-type", JSON)]
        if compiled.void:
            return Answer(204, b"", headers)
        if compiled.object_result:
            return Answer(200, (body or "null").encode(), headers, cacheable=True)
        if compiled.single:
            if rows != 1:
                raise ApiError(406, errors.SINGULAR, "Cannot coerce the result to a single JSON object",
                               f"The result contains {rows} rows")
            payload = body[1:-1].strip().encode()
            headers[0] = (b"content-type", b"application/vnd.pgrst.object+json; charset=utf-8")
        elif compiled.csv:
            payload = to_csv(body)
            headers[0] = (b"content-type", respond.CSV)
        else:
            payload = body.encode()
        offset = compiled.offset
        status = 200
        if total is not None:
            if rows == 0 and offset > 0 and offset >= total and compiled.planned is None:
                raise ApiError(416, errors.INVALID_RANGE, "Requested range not satisfiable",
                               f"An offset of {offset} was requested, but there are only {total} rows.")
            if offset > 0 or offset + rows < total:
                status = 206
        headers.append((b"content-range", respond.content_range(offset, rows, total)))
        if compiled.applied:
            headers.append((b"preference-applied", compiled.applied))
        return Answer(status, payload, headers, cacheable=True)

    # --- writes --------------------------------------------------------------------------------------------

    async def write(self, call: RestRequest, caller: Caller, conn: Any = None) -> Answer:
        method, path, query_string, headers, raw = call
        request = self.parse(method, path, query_string, headers, write=True)
        planner = plan.Planner(self.holder.cache, 0, self.settings.rest_aggregates_enabled)
        body = self.json_body(raw, headers, required=method in ("POST", "PATCH", "PUT") and not request.is_rpc)
        if request.is_rpc:
            return await self.run_read(_rpc_call(method, request, planner, body), caller, conn)
        if method == "PUT":
            raise ApiError(405, errors.UNSUPPORTED_METHOD, "PUT is not supported; use POST with "
                           "Prefer: resolution=merge-duplicates")
        table = planner.table(request.schema, request.target)
        node = planner.read_node(request, table, request.select)
        plan.check_paths(planner, request)
        prefer = request.prefer
        representation = prefer.return_ == "representation"
        location = method == "POST" and prefer.return_ == "headers-only" and bool(table.pk)
        if location:
            # headers-only: the primary key of the new row goes into Location (PostgREST's answer).
            node = planner.read_node(request, table, [parse.SelectItem("column", field=parse.Field(c))
                                                      for c in table.pk])
            representation = True
        if method == "POST":
            statements = query.insert(
                node, [(plan.check_payload_columns(table, names), json.dumps(group))
                       for names, group in _insert_groups(request, body)],
                request.on_conflict, prefer.resolution, representation, request.strip_nulls)
            status = 201
        elif method == "PATCH":
            if not isinstance(body, dict):
                raise ApiError(400, errors.INVALID_BODY, "The body of a PATCH must be a JSON object")
            columns = plan.check_payload_columns(table, list(body))
            if not columns:
                return Answer(204 if not representation else 200, b"[]" if representation else b"",
                              [(b"content-type", JSON), (b"content-range", b"*/*")])
            statements = [query.update(node, columns, json.dumps(body), representation, request.strip_nulls)]
            status = 200 if representation else 204
        else:
            statements = [query.delete(node, representation, request.strip_nulls)]
            status = 200 if representation else 204
        if method == "POST" and not representation:
            status = 201
        limit = prefer.max_affected if prefer.handling == "strict" and method in ("PATCH", "DELETE") else None
        in_batch = conn is not None
        text, rows_changed = await self._execute_write(statements, request, caller, conn, representation, limit)
        out: list[tuple[bytes, bytes]] = [(b"content-type", JSON)]
        total = rows_changed if prefer.count else None
        if method == "POST":
            out.append((b"content-range", f"*/{'*' if total is None else total}".encode()))
        else:
            out.append((b"content-range", respond.content_range(0, rows_changed, total)))
        applied = [p for p in prefer.applied if not (in_batch and p.startswith("tx="))]
        if applied:
            out.append((b"preference-applied", ", ".join(applied).encode()))
        payload = b""
        if location and text is not None:
            created = json.loads(text)
            if created:
                from urllib.parse import quote

                keys = "&".join(f"{quote(k)}=eq.{quote(str(v))}" for k, v in created[0].items())
                out.append((b"location", f"/{request.target}?{keys}".encode()))
        elif representation and text is not None:
            payload = text[1:-1].strip().encode() if request.accept == "single" else text.encode()
            if request.accept == "single":
                out[0] = (b"content-type", b"application/vnd.pgrst.object+json; charset=utf-8")
        return Answer(status, payload, out)

    async def _execute_write(self, statements: list[query.Statement], request: parse.ApiRequest, caller: Caller,
                             conn: Any, representation: bool, limit: int | None) -> tuple[str | None, int]:
        """Run a write's statements: inside the batch's transaction (`conn`), alone in its own implicit
        transaction when nothing is checked after it, else in a transaction of its own."""
        try:
            with errors.DatabaseErrors(caller.authenticated):
                if conn is not None:
                    return await self._run_write(conn, statements, representation, request.accept, limit)
                if (len(statements) == 1 and limit is None and request.accept != "single"
                        and request.prefer.tx != "rollback"):
                    # One statement and nothing to check after it: its own implicit transaction is all it needs.
                    async with callers.session(self.pool, caller, readonly=False) as conn:
                        return await self._run_write(conn, statements, representation, request.accept)
                async with callers.session(self.pool, caller, readonly=False) as conn, conn.transaction():
                    text, rows_changed = await self._run_write(conn, statements, representation, request.accept,
                                                               limit)
                    if request.prefer.tx == "rollback":
                        raise _Rollback(text, rows_changed)
                    return text, rows_changed
        except _Rollback as done:  # Prefer: tx=rollback: the answer of the write, none of its effects
            return done.args

    @staticmethod
    async def _run_write(conn: Any, statements: list[query.Statement], representation: bool, accept: str,
                         max_affected: int | None = None) -> tuple[str | None, int]:
        if representation:
            text, rows_changed, _ = await conn.fetchrow(statements[0].sql, *statements[0].params)
        else:
            text, rows_changed = None, 0
            for statement in statements:
                tag = await conn.execute(statement.sql, *statement.params)
                rows_changed += int(tag.rsplit(" ", 1)[-1])
        if max_affected is not None and rows_changed > max_affected:
            raise ApiError(400, "PGRST124", "Query result exceeds max-affected preference constraint",
                           f"The query affects {rows_changed} rows")
        if accept == "single" and rows_changed != 1:
            # Raised inside the transaction: the write is rolled back.
            raise ApiError(406, errors.SINGULAR, "Cannot coerce the result to a single JSON object",
                           f"The result contains {rows_changed} rows")
        return text, rows_changed

    async def sub_request(self, request: RestRequest, caller: Caller, conn: Any = None) -> Answer:
        """One request of a batch (or a persisted query) through the same pipeline, on `conn` when given."""
        method, path, query_string, headers, raw = request
        path = path.strip("/")
        if not path or path == "batch" or path.startswith("persisted"):
            raise ApiError(400, errors.BATCH_INVALID, f"/{path} cannot be part of a batch")
        if method in READ_METHODS:
            compiled = self.compiled_read(method, path, query_string, headers)
            return await self.run_read(compiled, caller, conn)
        if method not in WRITE_METHODS:
            raise ApiError(405, errors.UNSUPPORTED_METHOD, f"Unsupported HTTP method: {method}")
        if len(raw) > self.max_body:
            raise self.too_large()
        return await self.write(RestRequest(method, path, query_string, headers, raw), caller, conn)

    def json_body(self, raw: bytes, headers: dict[bytes, bytes], required: bool) -> Any:
        content_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip().lower()
        if not raw.strip():
            if required:
                raise ApiError(400, errors.INVALID_BODY, "Empty or invalid json", "The request body is empty")
            return None
        if content_type not in (b"application/json", b"application/vnd.pgrst.object+json", b""):
            raise ApiError(415, errors.INVALID_CONTENT_TYPE,
                           "Content-Type not acceptable: " + content_type.decode("latin-1")[:100])
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as error:
            raise ApiError(400, errors.INVALID_BODY, "Empty or invalid json", str(error)[:200]) from None

    # --- OpenAPI -------------------------------------------------------------------------------------------

    def openapi(self, headers: dict[bytes, bytes]) -> Answer:
        schema = self.schema_of(headers, write=False)
        document = openapi.document(self.holder.cache, schema, self.settings.api_url + "/rest/v1")
        return Answer(200, document, [(b"content-type", respond.OPENAPI)], cacheable=True)


class _Rollback(Exception):
    """Leaves a write's transaction without committing (Prefer: tx=rollback), carrying its answer."""


def _rpc_call(method: str, request: parse.ApiRequest, planner: plan.Planner, body: Any) -> Compiled:
    """A POST to /rpc/<function>, compiled as a read of the function's result."""
    if method != "POST":
        raise ApiError(405, errors.INVALID_RPC_METHOD, f"Cannot use the {method} method on RPC")
    rpc_plan = planner.rpc(request, body)
    fn = rpc_plan.function
    return Compiled(query.rpc(rpc_plan, method, request.prefer.count is not None, request.strip_nulls),
                    fn.volatility in ("i", "s"), request.accept == "single", request.accept == "csv",
                    request.offset.get((), 0), request.prefer.count is not None, None,
                    rpc_plan.node is None or not fn.returns_set, fn.returns_void, b"")


def _insert_groups(request: parse.ApiRequest, body: Any) -> list[tuple[list[str], list[dict[str, Any]]]]:
    """The rows of a POST by the columns each INSERT names."""
    rows = body if isinstance(body, list) else [body]
    if not all(isinstance(row, dict) for row in rows):
        raise ApiError(400, errors.INVALID_BODY, "All object keys must match",
                       "The body must be a JSON object or an array of objects")
    if request.prefer.missing == "default":
        # Each set of keys is its own INSERT, so a missing key takes the column default, not null.
        wanted = set(request.columns) if request.columns else None
        by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            keys = tuple(k for k in row if wanted is None or k in wanted)
            by_keys.setdefault(keys, []).append(row)
        return [(list(keys), group) for keys, group in by_keys.items()]
    if request.columns:
        return [(list(request.columns), rows)]
    return [(_keys(rows), rows)]


def _keys(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def to_csv(body: str) -> bytes:
    rows = json.loads(body)
    out = io.StringIO()
    if rows:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(rows[0].keys())
        for row in rows:
            writer.writerow(["" if v is None else json.dumps(v) if isinstance(v, dict | list) else
                             str(v).lower() if isinstance(v, bool) else v for v in row.values()])
    return out.getvalue().encode()
