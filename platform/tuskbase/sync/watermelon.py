"""WatermelonDB's sync protocol on top of the sync engine's pull and push (pull.py, push.py).

WatermelonDB's `synchronize()` calls the app's `pullChanges({lastPulledAt, schemaVersion, migration})`, which
must answer `{changes: {table: {created, updated, deleted}}, timestamp}` with a numeric timestamp, and
`pushChanges({changes, lastPulledAt})`. This module translates both ways:

- identity: WatermelonDB names no client and holds one number. A first pull (no `last_pulled_at`) makes a new
  engine client; every answer's `timestamp` is the id of a `sync.watermelon_pulls` row naming that client and
  the engine cursor, so the number a client presents leads back to both. Its previous timestamp stays valid
  once (the engine then undoes the pull whose answer was lost).
- records: only tables with a one-column primary key can be WatermelonDB records (`id`); a key column with
  another name is renamed to `id` and back. Timestamps travel as epoch milliseconds (WatermelonDB's date
  columns are numbers), json/jsonb as JSON text (its `@json` fields), every other value as JSON gives it.
- pull: the engine's delta (RLS-exact: access revoked -> deleted, granted -> created). A `reset` from the
  engine (a cursor older than the kept history, or a stale one) becomes a full pull answered with
  `experimentalStrategy: "replacement"`, so the device drops what it may no longer hold. `migration` adds the
  whole visible content of the tables it names, and of the tables whose columns it names, read now under RLS.
  `limit` bounds the records of the delta, and `has_more` tells the client to synchronize again.
- push (WatermelonDB's server rules): a created record that exists becomes an update; an updated record that is
  missing is created, unless the change log shows it was deleted (then the push is refused as a conflict, so
  the client pulls the delete); deleting a missing id is ignored (the engine does); `_status` is dropped and
  `_changed` passed on (the engine's `merge` rule reads it); unknown tables and columns are refused; a record
  changed on the server since `lastPulledAt` refuses the whole push under the table's conflict rule (`reject`;
  `merge` only when the same column changed; `lww` and custom rules decide as declared). A write RLS refuses (a
  record the user sees but may not update or delete, a new record the insert policy refuses) refuses the whole
  push with SYNC126 (403), not as a conflict: pulling cannot resolve it, and the change stays pending on the
  device. A value of the wrong JSON type for its column is SYNC127 (reason `invalid`). Nothing is applied
  unless everything is. A push is idempotent: replaying the same body for the same timestamp changes nothing.

Errors are the engine's JSON shape (`{"code", "message", "details"}`); its codes (SYNC120-SYNC127) are in errors.py.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from tuskbase.caller import Caller, service_transaction, transaction
from tuskbase.config import Settings
from tuskbase.sync import catalog as catalog_module
from tuskbase.sync import pull as engine_pull
from tuskbase.sync import push as engine_push
from tuskbase.sync.body import check_depth
from tuskbase.sync.catalog import Catalog, Table
from tuskbase.sync.errors import (
    BAD_PARAMETER,
    BAD_RECORD,
    BAD_TIMESTAMP,
    CONFLICT,
    FORBIDDEN_WRITE,
    NOT_WATERMELON_TABLE,
    REFUSED_RECORD,
    UNKNOWN_COLUMN,
    SyncError,
)
from tuskbase.sync.wire import PullResult, TableChanges

FIND_PULL = "select client_id, cursor from sync.watermelon_pulls where id = $1"
NEW_PULL = "insert into sync.watermelon_pulls (client_id, cursor) values ($1, $2) returning id"
FORGET_OLDER = "delete from sync.watermelon_pulls where client_id = $1 and id < $2"
CLIENT_OWNER = "select user_key from sync.clients where client_id = $1"
WAS_DELETED = """
select key::text from sync.changes
where tbl = $1 and op = 'D' and key = any($2::jsonb[])
"""
TIMESTAMP_TYPES = frozenset({"timestamp with time zone", "timestamp without time zone"})
JSON_TYPES = frozenset({"json", "jsonb"})
MAX_MIGRATION_ROWS = 1_000_000
MAX_TIMESTAMP = 2**63 - 1  # a timestamp is a bigint id: a larger number cannot be one (nor be bound as one)
_decode = msgspec.json.decode
_encode = msgspec.json.encode


@dataclass
class PullAnswer:
    changes: dict[str, dict[str, list[Any]]]
    timestamp: int
    has_more: bool
    replacement: bool

    def body(self) -> bytes:
        answer: dict[str, Any] = {"changes": self.changes, "timestamp": self.timestamp, "has_more": self.has_more}
        if self.replacement:
            answer["experimentalStrategy"] = "replacement"
        return _encode(answer)


# -- records ---------------------------------------------------------------------------------------------------


def syncable(catalog: Catalog) -> dict[str, Table]:
    """The tables a WatermelonDB client can hold: served, with a one-column primary key."""
    return {t.public_name: t for t in catalog.served() if len(t.pk) == 1}


def _millis(text: Any, column_type: str) -> Any:
    if not isinstance(text, str):
        return text
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text  # 'infinity' and the like: passed as Postgres wrote them
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000 + (0.5 if moment.microsecond % 1000 >= 500 else 0))


def to_record(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """A row as `row_to_json` gives it -> a WatermelonDB raw record."""
    key = table.pk[0]
    record: dict[str, Any] = {"id": str(row[key])}
    for column, value in row.items():
        if column == key or column in ("_status", "_changed"):
            continue
        kind = table.columns.get(column, "")
        if value is None:
            record[column] = None
        elif kind in TIMESTAMP_TYPES:
            record[column] = _millis(value, kind)
        elif kind in JSON_TYPES:
            record[column] = json.dumps(value, separators=(",", ":"))
        else:
            record[column] = value
    return record


def from_record(table: Table, record: Any, *, where: str) -> dict[str, Any]:
    """A pushed WatermelonDB raw record -> the row the engine writes (`_changed` kept for its merge rule)."""
    if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
        raise SyncError(BAD_RECORD, f"{where}: a record must be an object with a non-empty string id")
    unknown = sorted(c for c in record if (c not in table.columns and c not in ("id", "_status", "_changed"))
                     or (c == table.pk[0] and c != "id"))
    if unknown:
        raise SyncError(UNKNOWN_COLUMN, f"{where}: {', '.join(unknown)} not column(s) of {table.public_name}",
                        {"table": table.public_name, "columns": unknown})
    row: dict[str, Any] = {table.pk[0]: record["id"]}
    for column, value in record.items():
        if column in ("id", "_status"):
            continue
        if column == "_changed":
            if isinstance(value, str):
                row["_changed"] = [c for c in value.split(",") if c and c in table.columns]
            continue
        row[column] = _to_value(table, column, value, where)
    return row


def _to_value(table: Table, column: str, value: Any, where: str) -> Any:
    kind = table.columns[column]
    if value is None:
        return None
    if kind in TIMESTAMP_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SyncError(BAD_RECORD, f"{where}: {column} must be epoch milliseconds")
        try:
            return datetime.fromtimestamp(value / 1000, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            raise SyncError(BAD_RECORD, f"{where}: {column} is out of range") from None
    if kind in JSON_TYPES and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise SyncError(BAD_RECORD, f"{where}: {column} must hold JSON text") from None
    if isinstance(value, str) and "\x00" in value:
        raise SyncError(BAD_RECORD, f"{where}: {column} contains a NUL character")
    return value


async def _catalog(pool: Any, settings: Settings) -> Catalog:
    async with service_transaction(pool, readonly=True) as conn:
        return await catalog_module.cached(conn, settings.database_url or str(settings.db_port))


# -- pull ------------------------------------------------------------------------------------------------------


def parse_pull(params: Any, settings: Settings | None = None) -> tuple[int | None, dict[str, Any] | None, int | None]:
    """(last_pulled_at, migration, limit) from the query parameters, as WatermelonDB's docs send them."""
    last = _number(params.get("last_pulled_at"), "last_pulled_at", BAD_TIMESTAMP)
    _number(params.get("schema_version"), "schema_version", BAD_PARAMETER)
    limit = _number(params.get("limit"), "limit", BAD_PARAMETER)
    if limit is not None and limit < 1:
        raise SyncError(BAD_PARAMETER, "limit must be a positive integer")
    raw = params.get("migration")
    migration = None
    if raw not in (None, "", "null", "undefined"):
        check_depth(raw, settings, what="migration", kind=BAD_PARAMETER)
        try:
            migration = json.loads(raw)
        except (ValueError, RecursionError):
            raise SyncError(BAD_PARAMETER, "migration must be JSON (or null)") from None
        if not _migration_ok(migration):
            raise SyncError(BAD_PARAMETER, "migration must be {from, tables: [...], columns: [{table, columns}]}")
    return last or None, migration, limit


def _number(raw: str | None, name: str, kind: tuple[str, int]) -> int | None:
    if raw is None or raw in ("", "null", "undefined"):
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise SyncError(kind, f"{name} must be a non-negative whole number")
    return int(raw)


def _migration_ok(migration: Any) -> bool:
    return (isinstance(migration, dict) and isinstance(migration.get("from"), int)
            and isinstance(migration.get("tables", []), list)
            and all(isinstance(t, str) for t in migration.get("tables", []))
            and isinstance(migration.get("columns", []), list)
            and all(isinstance(c, dict) and isinstance(c.get("table"), str) and isinstance(c.get("columns"), list)
                    for c in migration.get("columns", [])))


async def resolve(pool: Any, caller: Caller, last_pulled_at: int | None) -> tuple[str, str | None]:
    """The engine client and cursor behind a timestamp (a new client on a first pull)."""
    if last_pulled_at is None:
        return "wmelon-" + secrets.token_urlsafe(18), None
    async with service_transaction(pool, readonly=True) as conn:
        row = await conn.fetchrow(FIND_PULL, last_pulled_at)
        owner = await conn.fetchval(CLIENT_OWNER, row[0]) if row is not None else None
    if row is None or owner != caller.user_key:
        raise SyncError(BAD_TIMESTAMP, "last_pulled_at is not a timestamp this server gave this user; "
                                       "sync from scratch (no last_pulled_at)")
    return row[0], row[1]


async def _remember(pool: Any, client_id: str, cursor: str | None, presented: int | None) -> int:
    async with service_transaction(pool) as conn:
        timestamp = await conn.fetchval(NEW_PULL, client_id, cursor)
        if presented is not None:
            await conn.execute(FORGET_OLDER, client_id, presented)
    return int(timestamp)


async def pull(pool: Any, caller: Caller, params: Any, settings: Settings) -> PullAnswer:
    last_pulled_at, migration, limit = parse_pull(params, settings)
    client_id, cursor = await resolve(pool, caller, last_pulled_at)
    tables = syncable(await _catalog(pool, settings))
    names = sorted(tables)

    result = await engine_pull.pull(pool, caller, client_id=client_id, cursor=cursor, limit=limit,
                                    tables=names, settings=settings)
    replacement = False
    if result.reset:
        # The device must drop what it holds: a full pull, applied by WatermelonDB as a replacement.
        replacement = True
        result = await _full(pool, caller, client_id, names, settings)
    changes = {name: {"created": [], "updated": [], "deleted": []} for name in names}
    for name, delta in result.changes.items():
        table = tables.get(name)
        if table is None:
            continue
        out = changes[name]
        out["created"] = [to_record(table, _decode(row)) for row in delta.created]
        out["updated"] = [to_record(table, _decode(row)) for row in delta.updated]
        out["deleted"] = [str(key) for key in delta.deleted]
    if migration is not None and last_pulled_at is not None and not replacement:
        await _add_migrated(pool, caller, tables, migration, changes)
    timestamp = await _remember(pool, client_id, result.cursor, last_pulled_at)
    return PullAnswer(changes, timestamp, result.has_more and not replacement, replacement)


async def _full(pool: Any, caller: Caller, client_id: str, names: list[str],
                settings: Settings) -> PullResult:
    """Every page of a pull from scratch, merged (a replacement must be whole)."""
    merged: dict[str, TableChanges] = {}
    cursor = None
    while True:
        page = await engine_pull.pull(pool, caller, client_id=client_id, cursor=cursor,
                                      limit=settings.sync_pull_limit_max, tables=names, settings=settings)
        for name, delta in page.changes.items():
            if name not in names:
                continue
            into = merged.setdefault(name, TableChanges())
            into.created += delta.created
            into.updated += delta.updated
            into.deleted += delta.deleted
        cursor = page.cursor
        if not page.has_more or page.reset:
            return PullResult(merged, cursor, False)


async def _add_migrated(pool: Any, caller: Caller, tables: dict[str, Table],
                        migration: dict[str, Any], changes: dict[str, dict[str, list[Any]]]) -> None:
    """What a migrated device lacks: all visible records of new tables (created) and of tables with new columns
    (updated, whole), unless the delta already carries them (ids are never duplicated)."""
    wanted: dict[str, str] = {}
    for entry in migration.get("columns", []):
        if entry["table"] in tables:
            wanted[entry["table"]] = "updated"
    for name in migration.get("tables", []):
        if name in tables:
            wanted[name] = "created"
    if not wanted:
        return
    async with transaction(pool, caller, readonly=True) as conn:
        for name, kind in sorted(wanted.items()):
            table = tables[name]
            out = changes[name]
            present = {r["id"] for r in out["created"]} | {r["id"] for r in out["updated"]} | set(out["deleted"])
            sql = f"select row_to_json(t)::text from {table.qualified} t limit {MAX_MIGRATION_ROWS}"
            for (text,) in await conn.fetch(sql):
                record = to_record(table, _decode(text))
                if record["id"] not in present:
                    out[kind].append(record)


# -- push ------------------------------------------------------------------------------------------------------


def parse_push(params: Any, body: Any) -> tuple[int, dict[str, Any]]:
    """(lastPulledAt, changes): the body is `{changes, lastPulledAt}` or, as WatermelonDB's docs example sends
    it, the changes alone with `last_pulled_at` in the query."""
    if not isinstance(body, dict):
        raise SyncError(BAD_RECORD, "the body must be a JSON object")
    query_last = _number(params.get("last_pulled_at"), "last_pulled_at", BAD_TIMESTAMP)
    if isinstance(body.get("changes"), dict) and set(body) <= {"changes", "lastPulledAt"}:
        changes = body["changes"]
        last = body.get("lastPulledAt", query_last)
    else:
        changes, last = body, query_last
    if isinstance(last, bool) or not isinstance(last, int) or not 0 < last <= MAX_TIMESTAMP:
        raise SyncError(BAD_TIMESTAMP, "lastPulledAt must be the timestamp of the client's last pull")
    if query_last is not None and query_last != last:
        raise SyncError(BAD_TIMESTAMP, "last_pulled_at and lastPulledAt differ")
    return last, changes


async def push(pool: Any, caller: Caller, params: Any, body: Any, settings: Settings) -> bytes:
    last_pulled_at, changes = parse_push(params, body)
    client_id, cursor = await resolve(pool, caller, last_pulled_at)
    tables = syncable(await _catalog(pool, settings))
    rows = _translate(tables, changes)
    await _apply_server_rules(pool, caller, tables, rows)
    # Idempotency: the same body pushed again for the same timestamp is the same mutation.
    digest = hashlib.sha256(_encode([client_id, last_pulled_at, changes])).hexdigest()[:40]
    result = await engine_push.push(pool, caller, client_id=client_id, mutation_id=f"wm-{digest}",
                                    cursor=cursor, changes=rows, settings=settings)
    if result.status == 200:
        return b"{}"
    refused = result.refused or (_decode(result.body).get("details") or {}).get("refused", [])
    reasons = {r.get("reason") for r in refused}
    for row in refused:
        if isinstance(row.get("key"), str | int):
            row["id"] = str(row.pop("key"))
    if reasons <= {"conflict", "not_found", "exists", "rejected_by_resolver"}:
        raise SyncError(CONFLICT, "changed on the server since lastPulledAt: pull, then push again; "
                                  "nothing was applied", {"refused": refused})
    if "forbidden" in reasons:
        raise SyncError(FORBIDDEN_WRITE, "row-level security refused a write; nothing was applied",
                        {"refused": refused})
    raise SyncError(REFUSED_RECORD, "a record cannot be applied; nothing was applied", {"refused": refused})


def _translate(tables: dict[str, Table], changes: Any) -> dict[str, dict[str, list[Any]]]:
    if not isinstance(changes, dict):
        raise SyncError(BAD_RECORD, "changes must be an object of tables")
    rows: dict[str, dict[str, list[Any]]] = {}
    for name, table_changes in changes.items():
        table = tables.get(name)
        if table is None:
            raise SyncError(NOT_WATERMELON_TABLE, f"{name!r} is not a table this server syncs with WatermelonDB")
        if not isinstance(table_changes, dict) or set(table_changes) - {"created", "updated", "deleted"}:
            raise SyncError(BAD_RECORD, f"changes of {name!r} must be an object of created, updated, deleted")
        out: dict[str, list[Any]] = {"created": [], "updated": [], "deleted": []}
        for kind in ("created", "updated"):
            items = table_changes.get(kind) or []
            if not isinstance(items, list):
                raise SyncError(BAD_RECORD, f"{name}.{kind} must be a list")
            out[kind] = [from_record(table, item, where=f"{name}.{kind}") for item in items]
        deleted = table_changes.get("deleted") or []
        if not isinstance(deleted, list) or not all(isinstance(i, str) and i for i in deleted):
            raise SyncError(BAD_RECORD, f"{name}.deleted must be a list of ids")
        out["deleted"] = list(deleted)
        rows[name] = out
    return rows


async def _apply_server_rules(pool: Any, caller: Caller, tables: dict[str, Table],
                              rows: dict[str, dict[str, list[Any]]]) -> None:
    """Created that exists -> updated; updated that is missing -> created, or a conflict if it was deleted."""
    missing: dict[str, list[dict[str, Any]]] = {}
    try:
        async with transaction(pool, caller, readonly=True) as conn:
            for name, out in rows.items():
                table = tables[name]
                key = table.pk[0]
                asked = [r[key] for r in out["created"] + out["updated"]]
                if not asked:
                    continue
                keys = "[" + ",".join(json.dumps({key: k}) for k in asked) + "]"
                existing = {str(json.loads(k)[key]) for (k,) in await conn.fetch(table.sql["visible_keys"], keys)}
                moved_up = [r for r in out["created"] if str(r[key]) in existing]
                missing[name] = [r for r in out["updated"] if str(r[key]) not in existing]
                out["created"] = [r for r in out["created"] if str(r[key]) not in existing]
                out["updated"] = [r for r in out["updated"] if str(r[key]) in existing]
                for row in moved_up:
                    row.pop("_changed", None)  # every column sent is the client's
                    out["updated"].append(row)
    except asyncpg.DataError as error:
        raise SyncError(BAD_RECORD, f"an id is malformed: {str(error).splitlines()[0][:200]}") from None
    missing = {name: found for name, found in missing.items() if found}
    if not missing:
        return
    gone: list[dict[str, Any]] = []
    async with service_transaction(pool, readonly=True) as conn:
        for name, found in missing.items():
            table = tables[name]
            key = table.pk[0]
            keys = [json.dumps({key: r[key]}) for r in found]
            deleted = {str(json.loads(k)[key]) for (k,) in await conn.fetch(WAS_DELETED, table.id, keys)}
            gone += [{"table": name, "id": str(r[key]), "reason": "deleted"} for r in found if str(r[key]) in deleted]
    if gone:
        raise SyncError(CONFLICT, "updated records were deleted on the server: pull, then push again; "
                                  "nothing was applied", {"refused": gone})
    for name, found in missing.items():
        for row in found:
            row.pop("_changed", None)
        rows[name]["created"] += found
