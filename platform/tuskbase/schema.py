"""The schema cache: tables, columns, foreign keys and functions of the exposed schemas, and identifier quoting.

REST, sync and OpenAPI share it. It is built by one introspection query (Postgres renders it as JSON) and
rebuilt when DDL runs: the event trigger of `sql/0020_rest_schema_reload.sql` NOTIFYs `RELOAD_CHANNEL`, and
`SchemaListener` reloads on each notification. Every identifier that reaches SQL goes through `quote_ident`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

RELOAD_CHANNEL = "tuskbase_schema"
log = logging.getLogger("tuskbase.schema")

# One round trip; relkinds: r table, p partitioned table, v view, m materialized view, f foreign table.
INTROSPECT = """
with rels as (
  select c.oid, n.nspname as schema, c.relname as name, c.relkind as kind,
         obj_description(c.oid, 'pg_class') as comment
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = any($1::text[]) and c.relkind in ('r', 'p', 'v', 'm', 'f')
)
select json_build_object(
  'tables', coalesce((select json_agg(json_build_object(
      'schema', r.schema, 'name', r.name, 'kind', r.kind, 'comment', r.comment,
      'columns', coalesce((
        select json_agg(json_build_object(
          'name', a.attname, 'type', format_type(a.atttypid, null), 'nullable', not a.attnotnull,
          'default', pg_get_expr(d.adbin, d.adrelid), 'generated', a.attgenerated <> '' or a.attidentity = 'a',
          'array', t.typcategory = 'A', 'category', t.typcategory
        ) order by a.attnum)
        from pg_attribute a
        join pg_type t on t.oid = a.atttypid
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where a.attrelid = r.oid and a.attnum > 0 and not a.attisdropped), '[]'),
      'pk', coalesce((
        select json_agg(a.attname order by k.ord)
        from pg_constraint pc
        cross join lateral unnest(pc.conkey) with ordinality as k(attnum, ord)
        join pg_attribute a on a.attrelid = pc.conrelid and a.attnum = k.attnum
        where pc.conrelid = r.oid and pc.contype = 'p'), '[]'),
      'unique', coalesce((
        select json_agg((select json_agg(a.attname order by k.ord)
                         from unnest(pc.conkey) with ordinality as k(attnum, ord)
                         join pg_attribute a on a.attrelid = pc.conrelid and a.attnum = k.attnum))
        from pg_constraint pc where pc.conrelid = r.oid and pc.contype in ('p', 'u')), '[]')
    )) from rels r), '[]'),
  'fkeys', coalesce((select json_agg(json_build_object(
      'name', pc.conname,
      'schema', sn.nspname, 'table', sc.relname,
      'columns', (select json_agg(a.attname order by k.ord) from unnest(pc.conkey) with ordinality k(attnum, ord)
                  join pg_attribute a on a.attrelid = pc.conrelid and a.attnum = k.attnum),
      'ref_schema', tn.nspname, 'ref_table', tc.relname,
      'ref_columns', (select json_agg(a.attname order by k.ord)
                      from unnest(pc.confkey) with ordinality k(attnum, ord)
                      join pg_attribute a on a.attrelid = pc.confrelid and a.attnum = k.attnum)))
    from pg_constraint pc
    join pg_class sc on sc.oid = pc.conrelid join pg_namespace sn on sn.oid = sc.relnamespace
    join pg_class tc on tc.oid = pc.confrelid join pg_namespace tn on tn.oid = tc.relnamespace
    where pc.contype = 'f' and sn.nspname = any($1::text[]) and tn.nspname = any($1::text[])), '[]'),
  -- Tables each view reads (through its rewrite rule): views inherit the foreign keys whose columns they keep.
  'view_uses', coalesce((select json_agg(distinct jsonb_build_array(vn.nspname, vc.relname, tn.nspname, tc.relname))
    from pg_rewrite rw
    join pg_class vc on vc.oid = rw.ev_class join pg_namespace vn on vn.oid = vc.relnamespace
    join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = rw.oid
                    and d.refclassid = 'pg_class'::regclass and d.refobjid <> vc.oid
    join pg_class tc on tc.oid = d.refobjid join pg_namespace tn on tn.oid = tc.relnamespace
    where vc.relkind in ('v', 'm') and vn.nspname = any($1::text[]) and tc.relkind in ('r', 'p')), '[]'),
  'functions', coalesce((select json_agg(json_build_object(
      'schema', n.nspname, 'name', p.proname, 'oid', p.oid,
      'args', coalesce((
        -- Input arguments only (IN, INOUT, VARIADIC): OUT / TABLE columns shape the result instead.
        select json_agg(json_build_object('name', coalesce(a.name, ''), 'type', format_type(a.type, null))
                        order by a.ord)
        from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]),
                    coalesce(p.proargmodes, array_fill('i'::"char", array[p.pronargs])),
                    coalesce(p.proargnames, array_fill(''::text, array[p.pronargs])))
             with ordinality as a(type, mode, name, ord)
        where a.mode in ('i', 'b', 'v')), '[]'),
      'defaults', p.pronargdefaults,
      'variadic', p.provariadic <> 0,
      'returns', format_type(p.prorettype, null),
      'returns_set', p.proretset,
      'return_schema', rn.nspname, 'return_table', rc.relname,
      'return_category', rt.typcategory,
      'volatility', p.provolatile,
      'comment', obj_description(p.oid, 'pg_proc')))
    from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
    join pg_type rt on rt.oid = p.prorettype
    left join pg_class rc on rc.oid = rt.typrelid
    left join pg_namespace rn on rn.oid = rc.relnamespace
    where n.nspname = any($1::text[]) and p.prokind = 'f'
      -- A function returning bare `record` (no OUT columns) needs a column list at each call: not callable.
      and not (p.prorettype = 'record'::regtype and not coalesce('o' = any(p.proargmodes) or 't' = any(p.proargmodes)
                                                                  or 'b' = any(p.proargmodes), false))), '[]')
)::text
"""


def quote_ident(name: str) -> str:
    """Quote one SQL identifier: the only way a name reaches SQL text."""
    if "\x00" in name:
        raise ValueError("identifier contains a NUL byte")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Quote one SQL string literal, for catalog names inlined into cached statements (values are bound)."""
    if "\x00" in text:
        raise ValueError("literal contains a NUL byte")
    return "'" + text.replace("'", "''") + "'"


def qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    nullable: bool
    default: str | None
    generated: bool
    is_array: bool
    category: str  # pg_type.typcategory: S string, N numeric, B boolean, U user (json, uuid), A array, ...


@dataclass(frozen=True, slots=True)
class ForeignKey:
    name: str
    schema: str
    table: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(slots=True)
class Table:
    schema: str
    name: str
    kind: str
    comment: str | None
    columns: dict[str, Column]
    pk: tuple[str, ...]
    unique: list[tuple[str, ...]]
    fkeys_out: list[ForeignKey] = field(default_factory=list)  # this table references another
    fkeys_in: list[ForeignKey] = field(default_factory=list)  # another table references this one

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)

    @property
    def is_view(self) -> bool:
        return self.kind in ("v", "m")


@dataclass(frozen=True, slots=True)
class Argument:
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Function:
    schema: str
    name: str
    oid: int
    args: tuple[Argument, ...]
    defaults: int
    variadic: bool
    returns: str
    returns_set: bool
    return_table: tuple[str, str] | None  # set when the function returns rows of a table or view
    return_category: str
    volatility: str  # i immutable, s stable, v volatile
    comment: str | None

    @property
    def required(self) -> frozenset[str]:
        return frozenset(a.name for a in self.args[: len(self.args) - self.defaults])

    @property
    def returns_void(self) -> bool:
        return self.returns == "void"

    @property
    def returns_composite(self) -> bool:
        return self.return_category == "C" or self.returns == "record"


@dataclass(slots=True)
class SchemaCache:
    schemas: tuple[str, ...]
    tables: dict[tuple[str, str], Table]
    functions: dict[tuple[str, str], list[Function]]
    version: int = 0

    @classmethod
    def from_json(cls, schemas: Iterable[str], text: str, version: int = 0) -> SchemaCache:
        raw = json.loads(text)
        tables: dict[tuple[str, str], Table] = {}
        for t in raw["tables"]:
            columns = {
                c["name"]: Column(c["name"], c["type"], c["nullable"], c["default"], c["generated"], c["array"],
                                  c["category"])
                for c in t["columns"]
            }
            tables[(t["schema"], t["name"])] = Table(
                t["schema"], t["name"], t["kind"], t["comment"], columns, tuple(t["pk"]),
                [tuple(u) for u in t["unique"] if u],
            )
        for f in raw["fkeys"]:
            fk = ForeignKey(f["name"], f["schema"], f["table"], tuple(f["columns"]), f["ref_schema"],
                            f["ref_table"], tuple(f["ref_columns"]))
            source, target = tables.get((fk.schema, fk.table)), tables.get((fk.ref_schema, fk.ref_table))
            if source is not None and target is not None:
                source.fkeys_out.append(fk)
                target.fkeys_in.append(fk)
        _view_relationships(tables, raw.get("view_uses", []))
        functions: dict[tuple[str, str], list[Function]] = {}
        for f in raw["functions"]:
            ret = (f["return_schema"], f["return_table"]) if f["return_table"] else None
            fn = Function(
                f["schema"], f["name"], f["oid"], tuple(Argument(a["name"], a["type"]) for a in f["args"]),
                f["defaults"], f["variadic"], f["returns"], f["returns_set"], ret, f["return_category"],
                f["volatility"], f["comment"],
            )
            functions.setdefault((fn.schema, fn.name), []).append(fn)
        return cls(tuple(schemas), tables, functions, version)

    def table(self, schema: str, name: str) -> Table | None:
        return self.tables.get((schema, name))

    def function(self, schema: str, name: str) -> list[Function]:
        return self.functions.get((schema, name), [])


def _view_relationships(tables: dict[tuple[str, str], Table], uses: list[list[str]]) -> None:
    """A view keeping all columns of a table's foreign key (same names) can be embedded like the table."""
    derived: list[ForeignKey] = []
    for view_schema, view_name, table_schema, table_name in uses:
        view, table = tables.get((view_schema, view_name)), tables.get((table_schema, table_name))
        if view is None or table is None:
            continue
        for fk in table.fkeys_out:
            if fk.schema == table.schema and fk.table == table.name and all(c in view.columns for c in fk.columns):
                derived.append(ForeignKey(fk.name, view.schema, view.name, fk.columns, fk.ref_schema, fk.ref_table,
                                          fk.ref_columns))
        for fk in table.fkeys_in:
            if all(c in view.columns for c in fk.ref_columns):
                derived.append(ForeignKey(fk.name, fk.schema, fk.table, fk.columns, view.schema, view.name,
                                          fk.ref_columns))
    for fk in derived:
        source, target = tables.get((fk.schema, fk.table)), tables.get((fk.ref_schema, fk.ref_table))
        if source is not None and target is not None:
            source.fkeys_out.append(fk)
            target.fkeys_in.append(fk)


async def load(conn: Any, schemas: Iterable[str], version: int = 0) -> SchemaCache:
    """Introspect with an asyncpg connection (any role: catalogs are readable by all)."""
    schemas = tuple(schemas)
    return SchemaCache.from_json(schemas, await conn.fetchval(INTROSPECT, list(schemas)), version)


def load_sync(conn: Any, schemas: Iterable[str]) -> SchemaCache:
    """The same with a psycopg connection (workers, CLI)."""
    schemas = tuple(schemas)
    sql = INTROSPECT.replace("$1::text[]", "%(schemas)s::text[]")
    (text,) = conn.execute(sql, {"schemas": list(schemas)}).fetchone()
    return SchemaCache.from_json(schemas, text)


class SchemaHolder:
    """The current cache of one API process, replaced as a whole on reload (readers never see a half)."""

    def __init__(self, schemas: Iterable[str]) -> None:
        self.schemas = tuple(schemas)
        self.cache = SchemaCache(self.schemas, {}, {}, 0)
        self.listeners: list[Callable[[SchemaCache], None]] = []
        self._conn: Any = None
        self._reloading: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._pending = False

    async def reload(self, pool: Any) -> SchemaCache:
        async with pool.acquire() as conn:
            cache = await load(conn, self.schemas, self.cache.version + 1)
        self.cache = cache
        for listener in self.listeners:
            listener(cache)
        return cache

    async def listen(self, pool: Any, connect: Callable[[], Any]) -> None:
        """Hold a dedicated connection LISTENing to `RELOAD_CHANNEL`; reload once per burst of DDL.

        If that connection is lost (Postgres restarted), it is reopened with backoff and the cache reloaded,
        since DDL may have run meanwhile.
        """
        self._conn = await connect()

        def on_notify(*_args: Any) -> None:
            if self._reloading is not None and not self._reloading.done():
                self._pending = True
                return
            self._reloading = asyncio.get_running_loop().create_task(self._reload_loop(pool))

        def on_lost(*_args: Any) -> None:
            if self._conn is not None:  # not closed on purpose
                self._reconnecting = asyncio.get_running_loop().create_task(self._relisten(pool, connect))

        await self._conn.add_listener(RELOAD_CHANNEL, on_notify)
        self._conn.add_termination_listener(on_lost)
        # A DDL that committed between the first load and LISTEN would be missed: load once more.
        await self.reload(pool)

    async def _relisten(self, pool: Any, connect: Callable[[], Any]) -> None:
        delay = 0.1
        while self._conn is not None:
            try:
                await self.listen(pool, connect)
                log.info("schema cache listener reconnected")
                return
            except Exception as error:  # Postgres still down: keep serving the cache we have
                log.warning("schema cache listener cannot reconnect yet: %s", error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _reload_loop(self, pool: Any) -> None:
        while True:
            self._pending = False
            try:
                await self.reload(pool)
            except Exception:  # keep serving the previous cache; the next DDL retries
                log.exception("schema cache reload failed")
            if not self._pending:
                return

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        for task in (self._reloading, self._reconnecting):
            if task is not None:
                task.cancel()
        if conn is not None:
            await conn.close()
