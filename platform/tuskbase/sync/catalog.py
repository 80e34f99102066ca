"""What the sync engine knows of the synced tables: keys, columns, conflict rules, policy dependencies, SQL.

`load(conn)` reads `sync.tables` and the catalogs in one round trip and returns a `Catalog`; `cached(conn)`
keeps it for `TTL` seconds per process. The catalog's `fingerprint` changes when a synced table's definition,
one of its policies, or a function in a user schema changes: a client whose last pull saw another fingerprint
gets an exact re-diff, since a policy change moves rows in or out of view without any row changing.

Policy dependencies: the tables a served table's policies read, found with pglast in the policy expressions and,
recursively, in the bodies of the SQL functions they call (`public.is_list_member()` reads `lists` and
`list_members`). A policy calling a function that is not plain SQL, or reading a table that is not in
`sync.tables` (so its changes are not logged), makes the dependencies unknown: every pull of that table then
re-diffs (correct, slower). `dep_columns` are the column names those expressions mention: an update of a
dependency table that changed none of them cannot change anyone's view.

All SQL here is built from identifiers read from the catalogs, each through `quote_ident`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pglast
from pglast import ast
from pglast.visitors import Visitor

from tuskbase.schema import quote_ident, quote_literal

log = logging.getLogger("tuskbase.sync.catalog")
TTL = 1.0

LOAD = """
select json_build_object(
  'tables', coalesce((select json_agg(json_build_object(
      'id', t.id, 'relid', t.relid::oid::bigint, 'schema', n.nspname, 'name', c.relname, 'served', t.served,
      'conflict', t.conflict, 'resolver', t.resolver::oid::regproc::text,
      'columns', (select json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod))
                                  order by a.attnum)
                  from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped),
      'pk', (select json_agg(a.attname order by k.ord)
             from pg_index i cross join unnest(i.indkey) with ordinality k(attnum, ord)
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
             where i.indrelid = c.oid and i.indisprimary),
      'policies', (select json_agg(concat_ws(' and ', pg_get_expr(p.polqual, p.polrelid),
                                             pg_get_expr(p.polwithcheck, p.polrelid)))
                   from pg_policy p where p.polrelid = c.oid),
      'rls', c.relrowsecurity,
      'readers', (select coalesce(json_agg(r), '[]') from unnest(array['anon', 'authenticated', 'service_role']) r
                  where has_table_privilege(r, c.oid, 'SELECT')),
      'version', c.xmin::text
    ) order by t.id)
    from sync.tables t join pg_class c on c.oid = t.relid join pg_namespace n on n.oid = c.relnamespace), '[]'),
  'policy_versions', (select string_agg(p.oid::text || ':' || p.xmin::text, ',' order by p.oid)
                      from pg_policy p join sync.tables t on t.relid = p.polrelid),
  'function_versions', (select string_agg(p.oid::text || ':' || p.xmin::text, ',' order by p.oid)
                        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                        where n.nspname not in ('pg_catalog', 'information_schema', 'sync', 'tuskbase')
                          and n.nspname not like 'pg\\_%')
)::text
"""
FUNCTIONS = """
select p.oid, n.nspname, p.proname, l.lanname, coalesce(pg_get_function_sqlbody(p.oid), p.prosrc)
from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_language l on l.oid = p.prolang
where p.proname = $1 and ($2::text is null or n.nspname = $2)
  and n.nspname not in ('pg_catalog', 'information_schema')
"""
RESOLVE = "select to_regclass($1)::oid"


@dataclass
class Table:
    id: int
    relid: int
    schema: str
    name: str
    served: bool
    conflict: str
    resolver: str | None
    columns: dict[str, str]
    pk: list[str]
    policies: list[str]
    rls: bool
    readers: frozenset[str] = frozenset()  # request roles with SELECT on the table
    deps: frozenset[int] | None = None  # ids of sync.tables read by the policies; None: unknown
    dep_columns: frozenset[str] = frozenset()
    sql: dict[str, str] = field(default_factory=dict)

    @property
    def public_name(self) -> str:
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    def key_value(self, key: dict[str, Any]) -> Any:
        """What a client is told of a key: the value for a one-column key, else the key object."""
        return key[self.pk[0]] if len(self.pk) == 1 else key


@dataclass
class Catalog:
    tables: dict[int, Table]
    by_name: dict[str, Table]
    fingerprint: str
    loaded_at: float = 0.0

    def served(self) -> list[Table]:
        return [t for t in self.tables.values() if t.served]


def _build_sql(table: Table) -> None:
    q = table.qualified
    cols = [quote_ident(c) for c in table.pk]
    key = "jsonb_build_object(" + ", ".join(f"{quote_literal(c)}, t.{qc}" for c, qc in zip(table.pk, cols,
                                                                                       strict=True)) + ")::text"
    join = " and ".join(f"t.{c} = k.{c}" for c in cols)
    select = f"select {key}, t.xmin::text::bigint, row_to_json(t)::text from {q} t"
    table.sql = {
        # Pass A of a diff: the visible rows of a range of heap blocks (a TID range scan: sequential reads,
        # no sort; a row that moves while a client is paged through it changed after the diff began, so the
        # change log brings it afterwards). The ctid comes as a tid: asyncpg reads it as (block, offset).
        "scan_range": f"select {key}, t.xmin::text::bigint, row_to_json(t)::text, t.ctid from {q} t "
                      "where t.ctid > $1::text::tid and t.ctid < $2::text::tid",
        # Where pass A stands in each pull: the heap's size in blocks and its storage (its relfilenode, new after
        # VACUUM FULL, CLUSTER, TRUNCATE or a rewriting ALTER, each of which gives every row another ctid). The
        # table named in FROM (no row read) takes its ACCESS SHARE lock, kept until the pull commits and taken
        # before the functions read the catalog: no rewrite (ACCESS EXCLUSIVE) can commit between this
        # statement and the scans of the pull, so the storage it reports is the one they read.
        "storage": f"select (pg_relation_size(s.r) / current_setting('block_size')::int)::int, "
                   f"pg_relation_filenode(s.r)::bigint from (values ({quote_literal(q)}::regclass)) s(r) "
                   f"left join (select from {q} limit 0) locked on true",
        # Key, version and row of the visible rows among the given keys (a jsonb array of key objects).
        "by_keys": f"{select} join jsonb_populate_recordset(null::{q}, $1::jsonb) k on {join}",
        # Which of the given keys are visible (pass B: rows a client holds that left its view).
        "visible_keys": f"select {key} from {q} t join jsonb_populate_recordset(null::{q}, $1::jsonb) k on {join}",
    }


async def load(conn: Any, previous: Catalog | None = None) -> Catalog:
    """Read the catalog; when nothing changed since `previous` (same fingerprint), reuse its analysis."""
    text = await conn.fetchval(LOAD)
    # Everything the analysis depends on is in this text (tables, columns, keys, policies, grants, rules, and
    # the versions of policies and user functions): its digest is the fingerprint.
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    if previous is not None and previous.fingerprint == digest:
        previous.loaded_at = time.monotonic()
        return previous
    raw = json.loads(text)
    tables: dict[int, Table] = {}
    for item in raw["tables"]:
        if not item["pk"]:
            continue  # the primary key was dropped after sync.enable: nothing can be keyed
        table = Table(
            id=item["id"], relid=item["relid"], schema=item["schema"], name=item["name"], served=item["served"],
            conflict=item["conflict"], resolver=item["resolver"],
            columns={c["name"]: c["type"] for c in item["columns"] or ()}, pk=item["pk"],
            policies=item["policies"] or [], rls=item["rls"], readers=frozenset(item["readers"]),
        )
        _build_sql(table)
        tables[table.id] = table
    by_relid = {t.relid: t.id for t in tables.values()}
    for table in tables.values():
        await _dependencies(conn, table, by_relid)
    return Catalog(tables, {t.public_name: t for t in tables.values()}, digest, time.monotonic())


_cache: dict[str, Catalog] = {}


def fresh(database_key: str) -> Catalog | None:
    """The cached catalog if it is younger than `TTL`, without touching the database."""
    catalog = _cache.get(database_key)
    if catalog is None or time.monotonic() - catalog.loaded_at > TTL:
        return None
    return catalog


async def cached(conn: Any, database_key: str) -> Catalog:
    """The catalog, reloaded at most every `TTL` seconds per database (a stale fingerprint only delays a re-diff
    to the next pull: the client record keeps the fingerprint its last pull saw)."""
    catalog = _cache.get(database_key)
    if catalog is None or time.monotonic() - catalog.loaded_at > TTL:
        catalog = await load(conn, catalog)
        _cache[database_key] = catalog
    return catalog


# -- dependencies ------------------------------------------------------------------------------------------


class _Refs(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.tables: set[tuple[str | None, str]] = set()
        self.functions: set[tuple[str | None, str]] = set()
        self.columns: set[str] = set()

    def visit_RangeVar(self, _ancestors: Any, node: ast.RangeVar) -> None:
        self.tables.add((node.schemaname, node.relname))

    def visit_FuncCall(self, _ancestors: Any, node: ast.FuncCall) -> None:
        names = [n.sval for n in node.funcname]
        self.functions.add((names[0] if len(names) > 1 else None, names[-1]))

    def visit_ColumnRef(self, _ancestors: Any, node: ast.ColumnRef) -> None:
        last = node.fields[-1]
        if isinstance(last, ast.String):
            self.columns.add(last.sval)


async def _dependencies(conn: Any, table: Table, by_relid: dict[int, int]) -> None:
    if not table.served:
        return
    if not table.rls:
        table.deps = frozenset()
        return
    refs = _Refs()
    try:
        for expression in table.policies:
            if expression:
                refs(pglast.parse_sql(f"select {expression}"))
        known = await _expand_functions(conn, refs, set())
    except pglast.parser.ParseError as error:
        log.warning("sync: cannot parse a policy of %s (%s): it re-diffs on every pull", table.public_name, error)
        known = False
    deps: set[int] = set()
    for schema, name in refs.tables:
        relid = await conn.fetchval(RESOLVE, f"{quote_ident(schema)}.{quote_ident(name)}" if schema
                                    else quote_ident(name))
        if relid is None:
            continue  # not a table (a CTE name in a function body)
        tbl = by_relid.get(relid)
        if tbl is None:
            log.warning("sync: a policy of %s reads %s.%s, which is not in sync.tables: re-diff on every pull "
                        "(select sync.enable('%s', served => false) to track it)", table.public_name, schema or "",
                        name, name)
            known = False
        else:
            deps.add(tbl)
    table.deps = frozenset(deps) if known else None
    table.dep_columns = frozenset(refs.columns)


async def _expand_functions(conn: Any, refs: _Refs, seen: set[int]) -> bool:
    """Add what the functions called read; False when one of them cannot be analysed."""
    known = True
    pending = list(refs.functions)
    while pending:
        schema, name = pending.pop()
        for oid, _nsp, _name, language, body in await conn.fetch(FUNCTIONS, name, schema):
            if oid in seen:
                continue
            seen.add(oid)
            if language != "sql":
                log.warning("sync: policy function %s is %s, not sql: its tables cannot be tracked", name, language)
                known = False
                continue
            inner = _Refs()
            try:
                inner(pglast.parse_sql(body))
            except pglast.parser.ParseError:
                known = False
                continue
            refs.tables |= inner.tables
            refs.columns |= inner.columns
            pending.extend(inner.functions - refs.functions)
            refs.functions |= inner.functions
    return known
