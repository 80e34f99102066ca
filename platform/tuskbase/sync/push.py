"""Push: a client's offline writes, applied in one transaction under the user's RLS, all or nothing.

Callable from any route (the HTTP one is `POST /sync/v1/push` in routes.py)::

    result = await push(pool, caller, client_id="device-1", mutation_id="m-42",
                        cursor="<cursor of the client's last pull>" or None,
                        changes={"todos": {"created": [row, ...], "updated": [row, ...], "deleted": [key, ...]}},
                        settings=settings)
    result.status    # 200 applied, 409 refused (nothing applied)
    result.body      # JSON bytes: {"applied": true, "rows": N} or the SYNC110 error with per-row reasons
    result.refused   # [{"table", "key", "reason", "columns"?, "message"?}, ...]

A row is an object of column values including the primary key; `deleted` holds key values (or key objects for
a composite key). An updated row may name the columns the client changed in `_changed` (a list, or a
comma-separated string as WatermelonDB sends); without it, every column sent counts as changed. Other
`_`-prefixed fields that are not columns are ignored.

Idempotency: `(client_id, mutation_id)` is recorded with the answer in the same transaction as the writes (or,
for a refused push, after the rollback). A replay returns the stored answer and changes nothing.

Conflicts: the server row "changed since the client's last pull" when its version (`xmin`) is neither the one
the client was last sent (its view record; the cursor says which pull it has) nor the one its own last push
wrote. Rules, per table (`sync.enable(..., conflict => ...)`):

- reject: a changed row refuses the push (`conflict`);
- lww: the client's values win;
- merge: the client's changed columns are applied unless the server changed one of the same columns since the
  version the client was sent (found in the change log by the writing transaction's id); then `conflict` with
  the columns;
- custom `fn(server jsonb, client jsonb, changed text[]) returns jsonb`: called on a changed row with the server
  row, the server row overlaid with the client's values, and the client's changed columns; its result is
  written (null refuses the row with `rejected_by_resolver`).

Per-row reasons: `conflict`, `not_found` (the row is gone or the user cannot see it: the two are not told apart),
`exists` (a created row's key is taken), `forbidden` (RLS or the role's privileges refused the write: a row the
user sees but may not update or delete, or a new row the insert policy refuses), `invalid` (a value or constraint
error, a value of the wrong JSON type for its column, a NUL character anywhere in the row; `message`, and
`columns` when they are known), `unknown_column`, `missing_key`, `rejected_by_resolver`. A delete of a row the user
cannot see is a no-op (deleting twice is fine); of a row the user sees but may not delete, `forbidden`.

Values are JSON of the column's type: a string for text, uuid, dates and the like; a boolean for boolean; a
number, or a string Postgres reads as one, for numbers; an array (or a Postgres array literal) for arrays; any
JSON for json/jsonb. An array or object is never written into a text column as its JSON text.

RLS and the write statements: an INSERT has no RETURNING clause, which would apply the select policy inside the
inserting statement; a policy helper (a SECURITY DEFINER function reading the same table, the usual Supabase
pattern) reads that statement's snapshot and cannot see the new row. Its version is read back in the next
statement, where it can. (An UPDATE's WHERE clause makes Postgres apply the select policy to the new row in any
case; a helper then finds the old version, with the same key.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from tuskbase.caller import Caller, Stepping, service_step
from tuskbase.config import Settings
from tuskbase.schema import quote_ident, quote_literal
from tuskbase.sync import catalog as catalog_module
from tuskbase.sync.catalog import Table
from tuskbase.sync.errors import BAD_REQUEST, CLIENT_OWNED, REFUSED, TOO_LARGE, UNKNOWN_TABLE, SyncError
from tuskbase.sync.pull import check_client_id, client_lock
from tuskbase.sync.wire import Cursor

RULES = "select id, conflict, resolver::oid::regproc::text from sync.tables"
CLIENT = "select user_key, pull_no from sync.clients where client_id = $1"
NEW_CLIENT = "insert into sync.clients (client_id, user_key) values ($1, $2)"
REPLAY = "select status, response::text from sync.mutations where client_id = $1 and mutation_id = $2"
# The answer is returned as stored (jsonb text), so that a replay is byte for byte the same.
REMEMBER = (
    "insert into sync.mutations (client_id, mutation_id, status, response) values ($1, $2, $3, $4::jsonb) "
    "returning response::text"
)
BASES = """
select key, case when pull_no = $4 then prev_version else version end, pushed
from sync.client_rows where client_id = $1 and tbl = $2 and key = any($3::jsonb[]::text[])
"""
RECORD_PUSHED = """
insert into sync.client_rows as r (client_id, tbl, key, version, pull_no, pushed)
select $1, t, k::text, null, $2, p from unnest($3::int[], $4::jsonb[], $5::bigint[]) as u(t, k, p)
on conflict (client_id, tbl, key) do update set pushed = excluded.pushed
"""
# What JSON each column of the given tables takes: its type with domains and array levels walked down to the base,
# named as the JSON that fits it ('json' any, 'boolean', 'number', 'composite', 'string') with its array depth;
# and whether the role $2 may update the table at all (FOR UPDATE needs it: an append-only table is read unlocked).
COLUMN_KINDS = """
with recursive walk(relid, name, typ, dims) as (
  select a.attrelid, a.attname, a.atttypid, 0 from pg_attribute a
  where a.attrelid = any($1::oid[]) and a.attnum > 0 and not a.attisdropped
  union all
  select w.relid, w.name, case when t.typtype = 'd' then t.typbasetype else t.typelem end,
         w.dims + case when t.typtype = 'd' then 0 else 1 end
  from walk w join pg_type t on t.oid = w.typ
  where t.typtype = 'd' or (t.typcategory = 'A' and t.typelem <> 0 and t.typlen = -1)
)
select w.relid::bigint, w.name::text, w.dims, has_any_column_privilege($2, w.relid, 'UPDATE'),
       case when t.oid in ('json'::regtype, 'jsonb'::regtype) then 'json'
            when t.typcategory = 'B' then 'boolean'
            when t.typcategory = 'N' then 'number'
            when t.typtype = 'c' then 'composite'
            else 'string' end
from walk w join pg_type t on t.oid = w.typ
where t.typtype <> 'd' and not (t.typcategory = 'A' and t.typelem <> 0 and t.typlen = -1)
"""
# What the server changed in a row since the version a client holds: the log entries of that row after the one
# that wrote the client's version (found by its transaction id), their transaction ids (the current version
# must be among them, else the feed has not logged everything yet), the union of the columns their updates
# changed, and whether anything other than an update (a delete and re-insert) happened.
SINCE_BASE = """
with base as (
  select seq from sync.changes where xid = $3 and tbl = $1 and key = $2::jsonb order by seq desc limit 1
), after as (
  select c.op, c.cols, c.xid from sync.changes c, base
  where c.seq > base.seq and c.tbl = $1 and c.key = $2::jsonb
)
select (select seq from base),
       coalesce((select array_agg(distinct xid) from after), '{}'),
       coalesce((select array_agg(distinct col) from after, unnest(after.cols) col), '{}'),
       exists (select 1 from after where op <> 'U')
"""


@dataclass
class PushResult:
    status: int
    body: bytes
    refused: list[dict[str, Any]] = field(default_factory=list)

    @property
    def applied(self) -> bool:
        return self.status == 200


class _Refused(Exception):
    def __init__(self, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.extra = extra


@dataclass
class _Row:
    table: Table
    kind: str  # created, updated, deleted
    key: dict[str, Any]
    key_text: str
    values: dict[str, Any]  # created/updated: the columns sent (without `_` fields)
    changed: list[str]
    rule: str = "lww"
    resolver: str | None = None
    problem: str | None = None  # why the row is refused as `invalid` before anything reads it


def _parse(catalog: catalog_module.Catalog, changes: Any, max_rows: int) -> list[_Row]:
    if not isinstance(changes, dict):
        raise SyncError(BAD_REQUEST, "changes must be an object of tables")
    rows: list[_Row] = []
    tables = []
    for name, table_changes in changes.items():
        table = catalog.by_name.get(name)
        if table is None or not table.served:
            raise SyncError(UNKNOWN_TABLE, f"{name!r} is not a synced table")
        if not isinstance(table_changes, dict) or set(table_changes) - {"created", "updated", "deleted"}:
            raise SyncError(BAD_REQUEST, f"changes of {name!r} must be an object of created, updated, deleted")
        tables.append((table, table_changes))
    tables.sort(key=lambda item: item[0].id)  # one lock order for every push
    for table, table_changes in tables:
        for kind in ("created", "updated", "deleted"):
            items = table_changes.get(kind) or []
            if not isinstance(items, list):
                raise SyncError(BAD_REQUEST, f"{table.public_name}.{kind} must be a list")
            for item in items:
                rows.append(_row(table, kind, item))
    if len(rows) > max_rows:
        raise SyncError(TOO_LARGE, f"a push carries at most {max_rows} rows")
    return rows


def _row(table: Table, kind: str, item: Any) -> _Row:
    if _has_nul(item):
        # Postgres text and jsonb cannot hold U+0000; the row is refused before its key reaches a statement.
        return _Row(table, kind, {}, "", {}, [], problem="a key, column name or value contains a NUL character")
    if kind == "deleted":
        key = item if isinstance(item, dict) else ({table.pk[0]: item} if len(table.pk) == 1 else None)
        if key is None or set(key) != set(table.pk):
            raise SyncError(BAD_REQUEST, f"{table.public_name}.deleted holds key values")
        return _Row(table, kind, key, _key_text(table, key), {}, [])
    if not isinstance(item, dict):
        raise SyncError(BAD_REQUEST, f"{table.public_name}.{kind} holds row objects")
    changed_field = item.get("_changed")
    values = {k: v for k, v in item.items() if k in table.columns or not k.startswith("_")}
    if any(c not in item for c in table.pk):
        return _Row(table, kind, {}, "", values, [])  # refused per row: missing_key
    key = {c: item[c] for c in table.pk}
    if isinstance(changed_field, str):
        changed = [c for c in changed_field.split(",") if c]
    elif isinstance(changed_field, list) and all(isinstance(c, str) for c in changed_field):
        changed = changed_field
    else:
        changed = [c for c in values if c not in table.pk]
    return _Row(table, kind, key, _key_text(table, key), values, changed)


def _has_nul(item: Any) -> bool:
    pending = [item]  # iterative: a deeply nested value must not exhaust the stack
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def _key_text(table: Table, key: dict[str, Any]) -> str:
    """The key as jsonb prints it (keys by length, then bytes), so it matches keys read back from Postgres."""
    names = sorted(table.pk, key=lambda c: (len(c.encode()), c.encode()))
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    return "{" + ", ".join(f"{dumps(c)}: {dumps(key[c])}" for c in names) + "}"


async def push(
    pool: Any,
    caller: Caller,
    *,
    client_id: str,
    mutation_id: str,
    cursor: str | None,
    changes: Any,
    settings: Settings,
) -> PushResult:
    client_id = check_client_id(client_id)
    if not isinstance(mutation_id, str) or not 1 <= len(mutation_id) <= 128 or "\x00" in mutation_id:
        raise SyncError(BAD_REQUEST, "mutation_id must be a string of 1 to 128 characters, without NUL")
    given = Cursor.decode(cursor, client_id) if cursor else None
    async with pool.acquire() as conn:
        refused: list[dict[str, Any]] = []
        # First without savepoints: rows written by a subtransaction would carry its id as xmin, not the id the
        # change log records, and merges compare the two. A database error aborts that attempt; the second
        # attempt applies each row in a savepoint to name every refused row, and is rolled back.
        for savepoints in (False, True):
            refused = []
            try:
                result = await _attempt(conn, caller, client_id, mutation_id, given, changes, settings,
                                        refused, savepoints)
            except _Rollback:
                break
            except _Diagnose as diagnosis:
                refused = [diagnosis.refusal]
                continue
            return result
        error = SyncError(REFUSED, f"push refused: {len(refused)} row(s) cannot be applied; nothing was written",
                          {"refused": refused, "mutation_id": mutation_id})
        body = json.dumps(error.to_json())
        async with conn.transaction():
            await service_step(conn, caller, client_lock(client_id))
            await _client(conn, client_id, caller)  # a new client was rolled back with the push
            replay = await conn.fetchrow(REPLAY, client_id, mutation_id)
            if replay is not None:  # a concurrent replay of the same push got there first
                return PushResult(replay[0], replay[1].encode())
            stored = await conn.fetchval(REMEMBER, client_id, mutation_id, error.status, body)
        return PushResult(error.status, stored.encode(), refused)


async def _attempt(conn: Any, caller: Caller, client_id: str, mutation_id: str,
                   given: Cursor | None, changes: Any, settings: Settings, refused: list[dict[str, Any]],
                   savepoints: bool) -> PushResult:
    """One transaction applying the push; raises _Rollback (refused rows) or _Diagnose (a database error)."""
    async with conn.transaction():
        session = await service_step(conn, caller, client_lock(client_id))
        catalog = await catalog_module.cached(conn, settings.database_url or str(settings.db_port))
        # Conflict rules are read fresh (the cached catalog may be a second old).
        rules = {tbl: (rule, fn) for tbl, rule, fn in await conn.fetch(RULES)}
        rows = _parse(catalog, changes, settings.sync_push_max_rows)
        for row in rows:
            row.rule, row.resolver = rules.get(row.table.id, (row.table.conflict, row.table.resolver))
        pull_no = await _client(conn, client_id, caller)
        replay = await conn.fetchrow(REPLAY, client_id, mutation_id)
        if replay is not None:
            return PushResult(replay[0], replay[1].encode())
        # The pull whose versions the client holds: its last, unless that answer was lost.
        undone = pull_no if given is not None and given.pull_no == pull_no - 1 else -1
        written = await _apply(session, client_id, rows, undone, given, refused, savepoints)
        if refused:
            raise _Rollback
        conn = await session.as_service()
        body = json.dumps({"applied": True, "rows": len(rows), "mutation_id": mutation_id})
        if written[0]:
            await conn.execute(RECORD_PUSHED, client_id, pull_no, *written)
        stored = await conn.fetchval(REMEMBER, client_id, mutation_id, 200, body)
        return PushResult(200, stored.encode())


class _Rollback(Exception):
    pass


class _Diagnose(Exception):
    """A row failed with a database error outside a savepoint: the transaction is lost, apply again with them."""

    def __init__(self, refusal: dict[str, Any]) -> None:
        super().__init__(refusal["reason"])
        self.refusal = refusal


async def _client(conn: Any, client_id: str, caller: Caller) -> int:
    row = await conn.fetchrow(CLIENT, client_id)
    me = caller.user_key
    if row is None:
        await conn.execute(NEW_CLIENT, client_id, me)
        return 0
    if row[0] != me:
        raise SyncError(CLIENT_OWNED, "this client_id is registered to another user")
    return row[1]


async def _apply(session: Stepping, client_id: str, rows: list[_Row], undone: int, given: Cursor | None,
                 refused: list[dict[str, Any]], savepoints: bool) -> tuple[list[int], list[str], list[int]]:
    """Apply every row (each in a savepoint if asked); returns the (tbl, key, version) of the rows the client now
    holds as the server has them (written on the version it was sent or had pushed)."""
    service = await session.as_service()
    bases: dict[tuple[int, str], tuple[int | None, int | None]] = {}
    by_table: dict[int, list[str]] = {}
    for row in rows:
        if row.key_text:
            by_table.setdefault(row.table.id, []).append(row.key_text)
    for tbl, keys in by_table.items():
        for key, base, pushed in await service.fetch(BASES, client_id, tbl, keys, undone):
            bases[(tbl, key)] = (base, pushed)
    # For merges, what the server changed since each row's base version (the change log is not the user's to
    # read, so this is fetched before the rows are applied).
    history: dict[tuple[int, str], tuple[int | None, frozenset[int], list[str], bool]] = {}
    for row in rows:
        if row.rule == "merge" and row.kind == "updated" and row.key_text:
            base = bases.get((row.table.id, row.key_text), (None, None))[0]
            if base is not None:
                base_seq, xids, cols, other = await service.fetchrow(SINCE_BASE, row.table.id, row.key_text, base)
                history[(row.table.id, row.key_text)] = (base_seq, frozenset(xids), list(cols), other)
    relids = sorted({row.table.relid for row in rows})
    kinds: dict[tuple[int, str], tuple[int, str]] = {}
    updatable: set[int] = set()
    for relid, name, dims, may_update, kind in await service.fetch(COLUMN_KINDS, relids, session.role):
        kinds[(relid, name)] = (dims, kind)
        if may_update:
            updatable.add(relid)
    written: tuple[list[int], list[str], list[int]] = ([], [], [])
    conn = await session.as_caller()
    for row in rows:
        try:
            if savepoints:
                async with conn.transaction():
                    version = await _apply_row(session, row, bases, history, kinds, updatable)
            else:
                try:
                    version = await _apply_row(session, row, bases, history, kinds, updatable)
                except asyncpg.PostgresError as error:
                    raise _Diagnose({"table": row.table.public_name, "key": row.table.key_value(row.key),
                                     "kind": row.kind, **_reason(error)}) from None
        except _Refused as refusal:
            refused.append({"table": row.table.public_name, "key": row.table.key_value(row.key) if row.key else None,
                            "kind": row.kind, "reason": refusal.reason, **refusal.extra})
            continue
        except asyncpg.PostgresError as error:
            refused.append({"table": row.table.public_name, "key": row.table.key_value(row.key), "kind": row.kind,
                            **_reason(error)})
            continue
        if version is not None and version > 0:
            written[0].append(row.table.id)
            written[1].append(row.key_text)
            written[2].append(version)
    return written


def _reason(error: asyncpg.PostgresError) -> dict[str, Any]:
    state = getattr(error, "sqlstate", "") or ""
    if state == "42501":
        if "row-level security" in str(error):
            return {"reason": "forbidden", "message": "row-level security refused the write"}
        return {"reason": "forbidden", "message": "the role may not write this table"}
    if state == "23505":
        return {"reason": "exists", "message": "a row with this key already exists"}
    return {"reason": "invalid", "message": str(error).splitlines()[0][:300]}


def _sql(table: Table, name: str, columns: tuple[str, ...] = ()) -> str:
    cache_key = f"{name}:{','.join(columns)}"
    cached = table.sql.get(cache_key)
    if cached is not None:
        return cached
    q = table.qualified
    where = " and ".join(f"t.{quote_ident(c)} = ($1::jsonb ->> {quote_literal(c)})::{table.columns[c]}"
                         for c in table.pk)
    if name == "lock":
        # The row locked (FOR UPDATE, so the update policy applies too) and, if it is not, the row as the select
        # policy alone shows it: a row the user sees but may not change is refused as forbidden, not not_found.
        # The locked version comes first: after waiting on a concurrent writer it is the newer one.
        row = f"select t.xmin::text::bigint v, to_jsonb(t)::text r from {q} t where {where}"
        sql = (f"select coalesce(l.v, s.v), coalesce(l.r, s.r), l.v is not null from (select) one "
               f"left join lateral ({row} for update) l on true left join lateral ({row}) s on l.v is null")
    elif name == "peek":
        # The same answer for a table the role may not update (FOR UPDATE would fail): never locked.
        sql = f"select t.xmin::text::bigint, to_jsonb(t)::text, false from (select) one left join {q} t on {where}"
    elif name == "delete":
        sql = f"delete from {q} t where {where} returning 1"
    elif name == "update":
        # RETURNING adds nothing here: the WHERE clause reads the row, so Postgres applies the select policy to
        # the new row anyway (a helper then reads the old version, which its snapshot holds).
        sets = ", ".join(f"{quote_ident(c)} = r.{quote_ident(c)}" for c in columns)
        sql = (f"update {q} t set {sets} from jsonb_populate_record(null::{q}, $2::jsonb) r where {where} "
               "returning t.xmin::text::bigint")
    elif name == "insert":
        cols = ", ".join(quote_ident(c) for c in columns)
        picks = ", ".join(f"r.{quote_ident(c)}" for c in columns)
        sql = f"insert into {q} ({cols}) select {picks} from jsonb_populate_record(null::{q}, $1::jsonb) r"
    elif name == "version":
        # In a later statement than the write, so a SECURITY DEFINER helper in the select policy sees the row.
        sql = f"select t.xmin::text::bigint from {q} t where {where}"
    elif name == "server_changed":
        # Columns among $3 whose value differs between the client's values $1 and the current row $2 (typed).
        sql = (f"select coalesce(array_agg(c), '{{}}') from unnest($3::text[]) c, "
               f"lateral (select to_jsonb(jsonb_populate_record(null::{q}, $1::jsonb)) b) base "
               "where base.b -> c is distinct from $2::jsonb -> c")
    else:
        raise KeyError(name)
    table.sql[cache_key] = sql
    return sql


async def _apply_row(session: Stepping, row: _Row, bases: dict, history: dict, kinds: dict,
                     updatable: set[int]) -> int | None:
    table = row.table
    conn = session.conn
    if row.problem is not None:
        raise _Refused("invalid", message=row.problem)
    if not row.key:
        raise _Refused("missing_key", columns=table.pk)
    unknown = [c for c in row.values if c not in table.columns]
    if unknown:
        raise _Refused("unknown_column", columns=unknown)
    _check_types(table, {**row.values, **row.key}, kinds)
    found = await conn.fetchrow(_sql(table, "lock" if table.relid in updatable else "peek"), row.key_text)
    current = found if found[0] is not None else None
    if current is not None and not found[2] and row.kind != "deleted":
        raise _Refused("forbidden", message="row-level security refused the write")  # seen, not updatable
    base, pushed = bases.get((table.id, row.key_text), (None, None))
    changed_on_server = current is not None and current[0] not in (base, pushed)
    rule = row.rule

    if row.kind == "deleted":
        if current is None:
            return None  # already gone (or never the user's to see): deleting twice is fine
        if rule == "reject" and changed_on_server:
            raise _Refused("conflict")
        if await conn.fetchval(_sql(table, "delete"), row.key_text) is None:
            raise _Refused("forbidden", message="row-level security refused the delete")
        return None

    if row.kind == "created" and current is None:
        columns = tuple(sorted(row.values))
        await conn.execute(_sql(table, "insert", columns), json.dumps(row.values))
        return await conn.fetchval(_sql(table, "version"), row.key_text)  # None: the user may not see it

    if current is None:
        raise _Refused("not_found")
    values = {c: row.values[c] for c in row.changed if c in row.values and c not in table.pk}
    if row.kind == "created":
        # The key exists: a create is then an update of every column sent, and the server row counts as changed.
        if rule in ("reject", "merge"):
            raise _Refused("exists")
        changed_on_server = True
        values = {c: v for c, v in row.values.items() if c not in table.pk}
    if changed_on_server:
        if rule == "reject":
            raise _Refused("conflict")
        if rule == "merge":
            clashing = await _clashing_columns(conn, table, row, current, history.get((table.id, row.key_text)),
                                               list(values))
            if clashing:
                raise _Refused("conflict", columns=clashing)
        elif rule == "custom":
            values = await _resolve(conn, table, row.resolver, current[1], values)
    if not values:
        return None
    columns = tuple(sorted(values))
    version = await conn.fetchval(_sql(table, "update", columns), row.key_text, json.dumps(values))
    if version is None:
        raise _Refused("forbidden", message="row-level security refused the write")
    # Written over server changes the client has not seen: it does not hold this version (negative: not recorded).
    return -version if changed_on_server else version


JSON_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


def _fits(value: Any, dims: int, kind: str) -> bool:
    """Whether a JSON value is one Postgres reads as a column of this kind, not as the text of another type."""
    if value is None or kind == "json":
        return True
    if dims:
        # An array as JSON (nested for more dimensions) or as a Postgres array literal.
        return isinstance(value, str) or (isinstance(value, list) and all(_fits(v, dims, kind) for v in value))
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "number":
        # A string too: clients keep bigints and decimals exact that way; Postgres refuses one that is no number.
        return isinstance(value, int | float | str) and not isinstance(value, bool)
    if kind == "composite":
        return isinstance(value, dict | str)
    return isinstance(value, str)


def _check_types(table: Table, values: dict[str, Any], kinds: dict) -> None:
    wrong = [c for c, v in values.items() if (table.relid, c) in kinds and not _fits(v, *kinds[(table.relid, c)])]
    if wrong:
        said = ", ".join(f"{c} is {table.columns[c]}, not a JSON {JSON_NAMES.get(type(values[c]), 'value')}"
                         for c in wrong)
        raise _Refused("invalid", columns=wrong, message=said)


async def _clashing_columns(conn: Any, table: Table, row: _Row, current: Any, history: Any,
                            columns: list[str]) -> list[str]:
    """The client's changed columns that the server also changed since the version the client was sent.

    From the change log when it covers the row from the client's version to the current one (only updates);
    otherwise (pruned, not yet logged, deleted and re-created) every changed column whose server value
    differs from the client's counts as a clash."""
    if history is not None:
        base_seq, xids, changed, other = history
        if base_seq is not None and current[0] in xids and not other:
            return [c for c in columns if c in changed]
    return list(await conn.fetchval(_sql(table, "server_changed"), json.dumps(row.values), current[1], columns))


async def _resolve(conn: Any, table: Table, resolver: str | None, server_row: str,
                   values: dict[str, Any]) -> dict[str, Any]:
    server = json.loads(server_row)
    client = {**server, **values}
    sql = f"select {resolver}($1::jsonb, $2::jsonb, $3::text[])::text"
    kept = await conn.fetchval(sql, server_row, json.dumps(client), list(values))
    if kept is None:
        raise _Refused("rejected_by_resolver")
    result = json.loads(kept)
    if not isinstance(result, dict):
        raise _Refused("rejected_by_resolver", message="the resolver did not return an object")
    return {c: v for c, v in result.items() if c in table.columns and c not in table.pk}
