"""Pull: what a user may see now, as the difference with what this client was last sent.

Callable from any route (the HTTP one is `POST /sync/v1/pull` in routes.py)::

    result = await pull(pool, claims, claims_json, client_id="device-1", cursor=None, limit=None,
                        tables=None, settings=settings)
    result.changes      # {public table name: TableChanges(created=[row json text], updated=[...], deleted=[key])}
    result.cursor       # opaque text, to send back on the next pull (None with reset)
    result.has_more     # pull again at once with the new cursor
    result.reset        # the client must drop its synced data and pull again with no cursor
    result.body()       # the JSON answer of /sync/v1/pull, as bytes

`pool` is the API's asyncpg pool (login role `authenticator`), `claims` the verified token claims and
`claims_json` their JSON (as `ClaimsCache.from_headers` returns them). Optional `quick`: a `QuickConnections`
(routes.py keeps one in `app.state.sync_quick`) for the one-round-trip answer when nothing is new; without it
that answer uses `pool`. `tables`: public table names (`todos`, or `schema.table` outside public); None means
every served table the caller's role may read. `limit`: records per answer (default and maximum are settings).
Raises `errors.SyncError` (400/401/403 with a SYNCnnn code).

How (see ARCHITECTURE.md, "Sync"): the server keeps, per client, a view record (`sync.client_rows`: row key -> version
sent, the row's `xmin`; the key as the text jsonb prints, always cast in Postgres so that one key has one
spelling). RLS decides visibility; rows are always read now, under the user's role, never
from the change log. Two modes:

- incremental: the keys changed in `sync.changes` since the cursor's seq are looked up under RLS and compared
  with the view record: visible and newer -> created/updated; invisible but held by the client -> deleted;
  invisible and never sent -> nothing (not even the id). The change log's seq follows commit order, so the
  cursor never skips a commit that committed late.
- diff: when something that decides visibility changed (a table a policy reads, a policy, the token's claims,
  a TRUNCATE, a new slot), every visible row is compared with the view record (pass A, by heap position),
  then every held row is checked for visibility (pass B, in key order). Exact for any policy; paged by the
  cursor. A table rewritten between two pages (VACUUM FULL, CLUSTER, a rewriting ALTER: new positions, nothing
  in the change log) has its pass A started over; the rows already sent compare equal and are not sent again.
  A diff's pages all carry the fingerprint (and feed epoch) it began with: a pull that sees other ones starts
  the diff over, comparing with the view record (the pages read under the old rules left no trace in the change
  log). A table a policy reads that changed while the diff ran is in the change log past the diff's target: the
  pull that ends the diff stops there (has_more), and the next one re-diffs.
- untracked inputs: a table whose policies read a table outside `sync.tables` (whose changes are not logged) is
  re-diffed on every pull that is not part of a diff (after the incremental step, with the cursor's seq as the
  diff's target), and the "nothing new" answer never answers for it. Rows that compare equal with the view
  record take no room in the page, so a re-diff that finds nothing walks the table in one answer.

A pull with nothing new answers from `sync.clients` and `sync.feed_state` alone, without reading synced tables.

Lost answers: each pull that changes the view record gets a number and a nonce, and the record keeps the
version before it. A client presenting the previous cursor again (it never got the answer) has that pull undone
first; any other stale cursor is answered `reset`. A cursor older than the retained change log: `reset`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import math
import operator
import re
import secrets
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import asyncpg

from tuskbase.config import Settings
from tuskbase.sync import catalog as catalog_module
from tuskbase.sync import narrow
from tuskbase.sync.catalog import Catalog, Table
from tuskbase.sync.errors import (
    BAD_CLIENT,
    BAD_CURSOR,
    BAD_REQUEST,
    CLIENT_OWNED,
    CURSOR_AHEAD,
    FORBIDDEN_TABLE,
    UNKNOWN_TABLE,
    SyncError,
)

CHUNK = 2000
VOLATILE_CLAIMS = ("iat", "exp", "nbf", "jti", "session_id")

BEGIN = (
    "select set_config('role', 'service_role', true), set_config('request.jwt.claims', $1, true), "
    "pg_advisory_xact_lock(hashtext('tuskbase_sync_client:' || $2))"
)
AS_ROLE = "select set_config('role', $1, true)"
CLIENT_FAST = "select * from sync.client_state($1)"
CLIENT_STATE = """
select c.user_key, c.pull_no, c.nonce, c.prev_nonce, f.seq, f.pruned_seq, f.epoch
from sync.feed_state f left join sync.clients c on c.client_id = $1
"""
NEW_CLIENT = "insert into sync.clients (client_id, user_key) values ($1, $2)"
FORGET_VIEW = """
with gone as (delete from sync.client_rows where client_id = $1)
update sync.clients set nonce = null, prev_nonce = null where client_id = $1
"""
UNDO_ROWS = """
with gone as (
  delete from sync.client_rows
  where client_id = $1 and pull_no = $2 and prev_version is null and pushed is null
)
update sync.client_rows set version = prev_version, prev_version = null, pull_no = $2 - 1
where client_id = $1 and pull_no = $2 and (prev_version is not null or pushed is not null)
"""
UNDO_CLIENT = (
    "update sync.clients set pull_no = pull_no - 1, nonce = prev_nonce, prev_nonce = null where client_id = $1"
)
SAVE_CLIENT = (
    "update sync.clients set pull_no = $2, nonce = $3, prev_nonce = nonce, seen_at = now() where client_id = $1"
)
TOUCH_CLIENT = "update sync.clients set seen_at = now() where client_id = $1 and seen_at < now() - interval '1 hour'"
DROP_TOMBSTONES = (
    "delete from sync.client_rows where client_id = $1 and version is null and pushed is null and pull_no < $2"
)
NEEDS_DIFF = """
select exists (
  select 1 from sync.changes
  where seq > $1 and seq <= $2
    and ((tbl = any($3::int[]) and (op <> 'U' or cols && $4::text[])) or (op = 'T' and tbl = any($5::int[])))
)
"""
CHANGED_KEYS = """
select seq, tbl, key::text from sync.changes
where seq > $1 and seq <= $2 and tbl = any($3::int[]) and op <> 'T'
order by seq limit $4
"""
VIEW_VERSIONS = """
select key, version from sync.client_rows
where client_id = $1 and tbl = $2 and key = any($3::text[])
"""
VIEW_HELD = """
select key from sync.client_rows
where client_id = $1 and tbl = $2 and version is not null and ($3::text is null or key > $3)
order by key limit $4
"""
HAS_VIEW = "select exists (select 1 from sync.client_rows where client_id = $1 and version is not null)"
RECORD = """
insert into sync.client_rows as r (client_id, tbl, key, version, pull_no)
select $1, t, k, v, $2 from unnest($3::int[], $4::text[], $5::bigint[]) as u(t, k, v)
on conflict (client_id, tbl, key) do update
set prev_version = case when r.pull_no < excluded.pull_no then r.version else r.prev_version end,
    version = excluded.version, pull_no = excluded.pull_no
"""


@dataclass
class TableChanges:
    created: list[str] = field(default_factory=list)  # row JSON texts
    updated: list[str] = field(default_factory=list)
    deleted: list[Any] = field(default_factory=list)  # key values (one-column key) or key objects

    def to_json(self) -> str:
        deleted = json.dumps(self.deleted, separators=(",", ":"))
        return f'{{"created":[{",".join(self.created)}],"updated":[{",".join(self.updated)}],"deleted":{deleted}}}'


@dataclass
class PullResult:
    changes: dict[str, TableChanges]
    cursor: str | None
    has_more: bool
    reset: bool = False

    def body(self) -> bytes:
        if self.count == 0:
            tables = _empty_changes(tuple(self.changes))
        else:
            tables = ",".join(f"{json.dumps(name)}:{c.to_json()}" for name, c in self.changes.items())
        return (f'{{"changes":{{{tables}}},"cursor":{json.dumps(self.cursor)},'
                f'"has_more":{json.dumps(self.has_more)},"reset":{json.dumps(self.reset)}}}').encode()

    @property
    def count(self) -> int:
        return sum(len(c.created) + len(c.updated) + len(c.deleted) for c in self.changes.values())


_EMPTY_CHANGES: dict[tuple[str, ...], str] = {}


def _empty_changes(names: tuple[str, ...]) -> str:
    """The `changes` members of an answer with nothing in it, kept per table set (most answers to polls)."""
    text = _EMPTY_CHANGES.get(names)
    if text is None:
        text = ",".join(f'{json.dumps(name)}:{{"created":[],"updated":[],"deleted":[]}}' for name in names)
        if len(_EMPTY_CHANGES) < 1000:
            _EMPTY_CHANGES[names] = text
    return text


@dataclass
class Cursor:
    """What the client holds between pulls. Not secret: every row it leads to is read under the user's RLS."""

    client: str
    pull_no: int
    nonce: str | None
    seq: int  # every change up to this seq is reflected in what the client was sent
    epoch: int
    fingerprint: str  # catalog fingerprint and claims hash the view (or the diff under way) was computed with
    diff: dict[str, Any] | None = None  # an unfinished diff: {"u": target seq, "q": [tbl ids], "ph": "a"|"b",
    #                                      "k": resume position (pass A: ctid, pass B: key json) or None,
    #                                      "f": fresh (no view held before), and for the current table's pass A
    #                                      "n": storage "k" is a position in, "x": restarted after a rewrite,
    #                                      "b"/"r": blocks read and rows seen}
    text: str | None = field(default=None, compare=False, repr=False)  # as the client sent it (current version)

    def encode(self) -> str:
        raw = json.dumps({"v": 2, "c": self.client, "p": self.pull_no, "n": self.nonce, "s": self.seq,
                          "e": self.epoch, "f": self.fingerprint, "d": self.diff}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, client_id: str) -> Cursor:
        try:
            raw = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if not _cursor_shape_ok(raw):
                raise ValueError("shape")
            cursor = cls(raw["c"], raw["p"], raw["n"], raw["s"], raw["e"], raw["f"], raw["d"])
            if raw["v"] == 2:
                cursor.text = text  # a "nothing new" answer hands it back without encoding it again
            if raw["v"] == 1 and cursor.diff is not None and cursor.diff.get("ph") == "b":
                # Version 1 resumed pass B after a key in jsonb order; keys are now ordered as text (migration
                # 0035), so that position would skip keys: pass B of the current table starts over instead.
                cursor.diff["k"] = None
        except (ValueError, KeyError, TypeError, RecursionError, binascii.Error, UnicodeDecodeError):
            raise SyncError(BAD_CURSOR, "cursor is not one this server issued") from None
        if cursor.client != client_id:
            raise SyncError(BAD_CURSOR, "cursor belongs to another client_id")
        return cursor


_BIGINT = 2**63 - 1
_TID = re.compile(r"\((\d{1,10}),(\d{1,5})\)")
_DIFF_KEYS = frozenset({"u", "q", "ph", "k", "f", "n", "x", "b", "r"})


def _count(value: Any, top: int = _BIGINT) -> bool:
    """A whole number from 0 to `top` (a bigint parameter at most): not a bool, a float or a string."""
    return type(value) is int and 0 <= value <= top


def _seq(value: Any) -> bool:
    """A change feed position: any whole number, since one past the feed is refused as such (SYNC107) before any
    statement binds it."""
    return type(value) is int and value >= 0


def _cursor_shape_ok(raw: Any) -> bool:
    """Every field of a cursor of either version as this server writes them. A cursor is not secret (a client
    may re-encode one): a field of another type or out of range would be a KeyError, a TypeError or an
    out-of-range SQL parameter deep inside a pull instead of SYNC101."""
    return (isinstance(raw, dict) and raw.get("v") in (1, 2) and isinstance(raw.get("c"), str)
            and _count(raw.get("p")) and (raw.get("n") is None or isinstance(raw["n"], str))
            and _seq(raw.get("s")) and _count(raw.get("e")) and isinstance(raw.get("f"), str)
            and "d" in raw and (raw["d"] is None or _diff_shape_ok(raw["d"])))


def _diff_shape_ok(diff: Any) -> bool:
    if not isinstance(diff, dict) or not {"u", "q", "ph", "k", "f"} <= set(diff) <= _DIFF_KEYS:
        return False
    if not (_seq(diff["u"]) and isinstance(diff["q"], list) and all(_count(t, 2**31 - 1) for t in diff["q"])
            and diff["ph"] in ("a", "b") and type(diff["f"]) is bool):
        return False
    if not all(_count(diff.get(name, 0)) for name in ("b", "r")) or type(diff.get("x", False)) is not bool:
        return False
    if diff.get("n") is not None and not _count(diff["n"]):
        return False
    position = diff["k"]
    if position is None:
        return True
    if not isinstance(position, str) or "\x00" in position:
        return False
    if diff["ph"] == "b":
        return True  # a key as text, compared as text
    tid = _TID.fullmatch(position)  # pass A resumes after a heap position: (block, offset)
    return tid is not None and int(tid[1]) <= 4294967295 and int(tid[2]) <= 65535


def claims_hash(claims: dict[str, Any]) -> str:
    stable = {k: v for k, v in claims.items() if k not in VOLATILE_CLAIMS}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:16]


# Polling clients present the same token, catalog and tables again and again: the fingerprint of a combination
# is kept (keyed by the claims' JSON text, which the claims cache hands out per token), bounded.
_FINGERPRINTS: dict[tuple[str, str, tuple[int, ...]], str] = {}
_FINGERPRINTS_MAX = 10_000


def view_fingerprint(catalog: Catalog, claims: dict[str, Any], wanted: list[Table],
                     claims_json: str | None = None) -> str:
    """What a client's view was computed with: catalog (tables, policies, functions), claims and the tables asked
    for. A pull that sees another fingerprint re-diffs (a new table in the set, a policy change, new claims)."""
    ids = tuple(t.id for t in wanted)
    key = (catalog.fingerprint, claims_json, ids) if claims_json is not None else None
    found = _FINGERPRINTS.get(key) if key is not None else None
    if found is None:
        tables = ",".join(map(str, ids))
        found = hashlib.sha256(f"{catalog.fingerprint}.{claims_hash(claims)}.{tables}".encode()).hexdigest()[:20]
        if key is not None:
            if len(_FINGERPRINTS) >= _FINGERPRINTS_MAX:
                _FINGERPRINTS.clear()
            _FINGERPRINTS[key] = found
    return found


def user_key(claims: dict[str, Any]) -> str:
    return str(claims.get("sub") or claims.get("role"))


def check_client_id(client_id: Any) -> str:
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 128 or "\x00" in client_id:
        raise SyncError(BAD_CLIENT, "client_id must be a string of 1 to 128 characters, without NUL")
    return client_id


class QuickConnections:
    """Connections for the one-statement fast path of `pull`: no transaction, no session state to reset.

    asyncpg's pool runs a reset query on every release (a second round trip); a connection that only ever ran
    `sync.client_state()` outside a transaction has nothing to reset. A connection that failed is dropped.
    """

    def __init__(self, connect: Any, size: int) -> None:
        self.connect = connect
        self.size = size
        self.idle: list[Any] = []
        self.slots = asyncio.Semaphore(size)

    async def run(self, function: Any, *args: Any) -> Any:
        async with self.slots:  # at most `size` connections, each reused
            conn = self.idle.pop() if self.idle else await self.connect()
            try:
                result = await function(conn, *args)
            except BaseException:
                conn.terminate()
                raise
            if not conn.is_closed():
                self.idle.append(conn)
            return result

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            await conn.close()


class _Page:
    """The records of one answer, bounded by `limit`, and the view record writes they imply.

    Each record is kept twice: in the answer (`changes`) and flat (`tbls`, `keys`, `versions`, `kinds`, `rows`)
    for the view record and for `finish`."""

    def __init__(self, limit: int, tables: list[Table]) -> None:
        self.room = limit
        self.tables = {t.id: t for t in tables}
        self.changes = {t.public_name: TableChanges() for t in tables}
        self.tbls: list[int] = []
        self.keys: list[str] = []
        self.versions: list[int | None] = []  # None: told the row is gone
        self.kinds: list[str] = []
        self.rows: list[str | None] = []
        self.only_new = True

    def put(self, table: Table, kind: str, key: str, version: int | None, row: str | None) -> None:
        self.only_new = False
        self._answer(table, kind, key, row)
        self.tbls.append(table.id)
        self.keys.append(key)
        self.versions.append(version)
        self.kinds.append(kind)
        self.rows.append(row)
        self.room -= 1

    def put_created(self, table: Table, rows: list[Any]) -> None:
        """Rows (key, version, row, ...) the view record had no entry for when the diff began (a fresh client's
        first diff): all are created, and a plain COPY records them. Per page, not per row: a first sync sends
        every visible row."""
        created = [r[2] for r in rows]
        self.changes[table.public_name].created.extend(created)
        self.tbls.extend(repeat(table.id, len(rows)))
        self.keys.extend(r[0] for r in rows)
        self.versions.extend(r[1] for r in rows)
        self.kinds.extend(repeat("created", len(rows)))
        self.rows.extend(created)
        self.room -= len(rows)

    def finish(self) -> None:
        """Keep one record per key: the last. A row that changed while this pull ran can be met twice (each
        statement reads the latest commits: two block ranges of pass A, or pass A and the change log). Every
        record was classified against the view record as it was before this pull, so the last one is right."""
        if len(set(self.keys)) == len(self.keys):
            return
        last = {key: index for index, key in enumerate(zip(self.tbls, self.keys, strict=True))}
        if len(last) == len(self.keys):
            return  # equal keys of different tables
        kept = sorted(last.values())
        self.changes = {t.public_name: TableChanges() for t in self.tables.values()}
        for index in kept:
            self._answer(self.tables[self.tbls[index]], self.kinds[index], self.keys[index], self.rows[index])
        for name in ("tbls", "keys", "versions", "kinds", "rows"):
            values = getattr(self, name)
            setattr(self, name, [values[index] for index in kept])

    def _answer(self, table: Table, kind: str, key: str, row: str | None) -> None:
        changes = self.changes[table.public_name]
        if kind == "deleted":
            changes.deleted.append(table.key_value(json.loads(key)))
        else:
            getattr(changes, kind).append(row)


class _Session:
    """One pull's connection, switching between service_role (bookkeeping) and the user's role (data)."""

    def __init__(self, conn: Any, role: str) -> None:
        self.conn = conn
        self.role = role
        self.current = "service_role"

    async def as_user(self) -> Any:
        if self.current != self.role:
            await self.conn.execute(AS_ROLE, self.role)
            self.current = self.role
        return self.conn

    async def as_service(self) -> Any:
        if self.current != "service_role":
            await self.conn.execute(AS_ROLE, "service_role")
            self.current = "service_role"
        return self.conn


async def pull(
    pool: Any,
    claims: dict[str, Any],
    claims_json: str,
    *,
    client_id: str,
    cursor: str | None,
    limit: int | None,
    tables: list[str] | None,
    settings: Settings,
    quick: QuickConnections | None = None,
) -> PullResult:
    client_id = check_client_id(client_id)
    if limit is None:
        limit = settings.sync_pull_limit_default
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise SyncError(BAD_REQUEST, "limit must be a positive integer")
    limit = min(limit, settings.sync_pull_limit_max)
    given = Cursor.decode(cursor, client_id) if cursor else None
    database_key = settings.database_url or str(settings.db_port)
    if given is not None and given.diff is None:
        if quick is not None:
            quiet = await quick.run(_nothing_new, given, claims, claims_json, tables, database_key)
        else:
            async with pool.acquire() as conn:
                quiet = await _nothing_new(conn, given, claims, claims_json, tables, database_key)
        if quiet is not None:
            return quiet
    try:
        return await _transaction(pool, claims, claims_json, client_id, given, limit, tables, database_key)
    except _Reseen:
        # Rare (a row changed during a paged first sync): answer again, comparing with the view record. The
        # cursor is decoded anew, since the first try advanced the diff it carries.
        given = Cursor.decode(cursor, client_id) if cursor else None
        return await _transaction(pool, claims, claims_json, client_id, given, limit, tables, database_key,
                                  exact=True)


async def _transaction(pool: Any, claims: dict[str, Any], claims_json: str, client_id: str, given: Cursor | None,
                       limit: int, tables: list[str] | None, database_key: str, *, exact: bool = False) -> PullResult:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(BEGIN, claims_json, client_id)
        role = claims["role"]
        session = _Session(conn, role)
        catalog = await catalog_module.cached(conn, database_key)
        wanted = _requested(catalog, tables, role)
        return await _pull(session, catalog, wanted, claims, client_id, given, limit, exact)


async def _nothing_new(conn: Any, given: Cursor, claims: dict[str, Any], claims_json: str,
                       tables: list[str] | None, database_key: str) -> PullResult | None:
    """The answer when the change log has nothing past the cursor and nothing else moved; None otherwise.

    One round trip (`sync.client_state`), no transaction, no synced table read."""
    owner, pull_no, nonce, _prev, seen_hours, seq, pruned_seq, epoch = await conn.fetchrow(CLIENT_FAST, given.client)
    if (owner != user_key(claims) or (pull_no, nonce) != (given.pull_no, given.nonce) or seq != given.seq
            or given.seq < pruned_seq or epoch != given.epoch or seen_hours is None or seen_hours >= 1):
        return None
    catalog = catalog_module.fresh(database_key)  # reloading it needs the service role: the slow path does
    if catalog is None:
        return None
    wanted = _requested(catalog, tables, claims["role"])
    if any(t.deps is None for t in wanted):
        return None  # a policy input outside the change log may have moved: `_pull` re-diffs those tables
    if given.fingerprint != view_fingerprint(catalog, claims, wanted, claims_json):
        return None
    return PullResult({t.public_name: TableChanges() for t in wanted}, given.text or given.encode(), False)


def _requested(catalog: Catalog, names: list[str] | None, role: str) -> list[Table]:
    """The tables of a pull: those named, or every served table the role may read."""
    if names is None:
        return sorted((t for t in catalog.served() if role in t.readers), key=lambda t: t.id)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SyncError(BAD_REQUEST, "tables must be a list of table names")
    found: dict[int, Table] = {}
    for name in names:
        table = catalog.by_name.get(name)
        if table is None or not table.served:
            raise SyncError(UNKNOWN_TABLE, f"{name!r} is not a synced table")
        if role not in table.readers:
            raise SyncError(FORBIDDEN_TABLE, f"role {role!r} may not read {name!r}")
        found[table.id] = table
    return [found[tbl] for tbl in sorted(found)]


async def _pull(session: _Session, catalog: Catalog, wanted: list[Table], claims: dict[str, Any], client_id: str,
                given: Cursor | None, limit: int, exact: bool) -> PullResult:
    """One answer. `exact`: compare every row with the view record, even in a diff that began with none."""
    conn = session.conn
    owner, pull_no, nonce, prev_nonce, feed_seq, pruned_seq, epoch = await conn.fetchrow(CLIENT_STATE, client_id)
    me = user_key(claims)
    if owner is None:
        await conn.execute(NEW_CLIENT, client_id, me)
        pull_no, nonce, prev_nonce = 0, None, None
    elif owner != me:
        raise SyncError(CLIENT_OWNED, "this client_id is registered to another user")
    fingerprint = view_fingerprint(catalog, claims, wanted)
    fresh = given is None
    if given is not None:
        _check_against_feed(given, feed_seq, epoch)
        if (given.pull_no, given.nonce) == (pull_no, nonce):
            if pull_no % 32 == 0 and pull_no:
                await conn.execute(DROP_TOMBSTONES, client_id, pull_no)
        elif (given.pull_no, given.nonce) == (pull_no - 1, prev_nonce) and prev_nonce is not None:
            # The answer to pull `pull_no` never reached the client: undo it, then answer again.
            await conn.execute(UNDO_ROWS, client_id, pull_no)
            await conn.execute(UNDO_CLIENT, client_id)
            pull_no, nonce, prev_nonce = pull_no - 1, prev_nonce, None
        else:
            return PullResult({}, None, False, reset=True)
        since = given.diff["u"] if given.diff else given.seq
        if since < pruned_seq:
            return PullResult({}, None, False, reset=True)
    else:
        # A first sync (or a re-sync after reset): the client holds nothing, and no earlier pull can be undone.
        await conn.execute(FORGET_VIEW, client_id)
        nonce = None
    await conn.execute(TOUCH_CLIENT, client_id)

    page = _Page(limit, wanted)
    wanted_ids = [t.id for t in wanted]
    if fresh:
        diff: dict[str, Any] | None = {"u": feed_seq, "q": wanted_ids, "ph": "a", "k": None, "f": True}
        seq = feed_seq
    else:
        assert given is not None
        diff, seq = given.diff, given.seq
        if given.epoch != epoch or given.fingerprint != fingerprint:
            # The rules changed since the view was computed, or since the diff under way began (its pages so far
            # were read under the old ones, and no change log entry will ever point back at them): diff anew,
            # against the view record, which holds what those pages sent.
            diff = {"u": feed_seq, "q": wanted_ids, "ph": "a", "k": None,
                    "f": not await conn.fetchval(HAS_VIEW, client_id)}
        elif diff is None and seq < feed_seq and await _needs_diff(conn, catalog, wanted, seq, feed_seq):
            diff = {"u": feed_seq, "q": wanted_ids, "ph": "a", "k": None, "f": False}
        elif diff is not None and not set(diff["q"]) <= set(wanted_ids):
            # A diff walks only tables of the pull it began in (their ids are in the fingerprint): a cursor naming
            # others was re-encoded by hand. Refused before any of them is read.
            raise SyncError(BAD_CURSOR, "cursor is not one this server issued (its diff names other tables)")

    if exact and diff is not None:
        diff["f"] = False
    has_more = False
    walked = diff is not None  # this pull works on a diff, which walks the tables with untracked inputs too
    if diff is not None:
        finished = await _diff(session, catalog, client_id, diff, page)
        if finished:
            seq, diff = diff["u"], None
            # A table a policy reads changed while the diff ran (past its target seq): the tables it already
            # walked were judged without that change, which the changed keys alone do not bring. The next pull
            # re-diffs, as it would after any such change.
            if seq < feed_seq:
                has_more = await _needs_diff(await session.as_service(), catalog, wanted, seq, feed_seq)
        else:
            has_more = True
    if diff is None and not has_more and page.room > 0 and seq < feed_seq:
        seq, has_more = await _incremental(session, catalog, wanted, client_id, seq, feed_seq, page)
    if not walked and not has_more:
        diff, has_more = await _rediff_untracked(session, catalog, wanted, client_id, seq, page)

    page.finish()
    if page.keys:
        conn = await session.as_service()
        pull_no += 1
        nonce = secrets.token_urlsafe(9)
        await _record(conn, client_id, pull_no, page)
        await conn.execute(SAVE_CLIENT, client_id, pull_no, nonce)
    new_cursor = Cursor(client_id, pull_no, nonce, seq, epoch, fingerprint, diff)
    return PullResult(page.changes, new_cursor.encode(), has_more)


def _check_against_feed(given: Cursor, feed_seq: int, epoch: int) -> None:
    """Refuse a cursor of this feed (same epoch) that claims changes the feed has not logged yet: no pull issues
    one, and answering it would leave the client waiting, with "nothing new", until the feed got that far."""
    if given.epoch != epoch:
        return  # another feed's cursor: the pull re-diffs
    ahead = given.diff["u"] if given.diff else given.seq  # a diff under way replaces seq with its target
    if ahead > feed_seq:
        raise SyncError(CURSOR_AHEAD, f"cursor is past the change feed (seq {ahead}, the feed is at {feed_seq}): "
                                      "not one this server issued; pull with no cursor to start over")


async def _record(conn: Any, client_id: str, pull_no: int, page: _Page) -> None:
    """Write the page's records into the view record."""
    if not page.only_new:
        await conn.execute(RECORD, client_id, pull_no, page.tbls, page.keys, page.versions)
        return
    records = zip(repeat(client_id), page.tbls, page.keys, page.versions, repeat(pull_no))  # tuples made in C
    try:
        await conn.copy_records_to_table("client_rows", schema_name="sync", records=records,
                                         columns=("client_id", "tbl", "key", "version", "pull_no"))
    except asyncpg.UniqueViolationError:
        # A row sent by an earlier page of this fresh diff changed and moved further into the table, where
        # this page met it again: it is an update for the client, which only a comparison with the view
        # record can tell. The whole pull is answered again that way (see `pull`).
        raise _Reseen from None


class _Reseen(Exception):
    """A fresh diff met a row that an earlier page of it had sent."""


async def _needs_diff(conn: Any, catalog: Catalog, wanted: list[Table], since: int, until: int) -> bool:
    """Whether the change log since `since` holds a change that can move rows of the tracked tables of `wanted` in
    or out of view. Tables with untracked policy inputs are not asked about: `_rediff_untracked` re-diffs them on
    every pull, which answering True here for them would turn into a `has_more` that never ends."""
    tracked = [t for t in wanted if t.deps is not None]
    if not tracked:
        return False
    deps = sorted({d for t in tracked for d in (t.deps or ())})
    columns = sorted({c for t in tracked for c in t.dep_columns})
    return await conn.fetchval(NEEDS_DIFF, since, until, deps, columns, [t.id for t in tracked])


async def _rediff_untracked(session: _Session, catalog: Catalog, wanted: list[Table], client_id: str, seq: int,
                            page: _Page) -> tuple[dict[str, Any] | None, bool]:
    """Re-diff the tables whose policies read a table outside `sync.tables`, once per pull that is not already
    part of a diff: a change to such an input leaves no trace in the change log (a membership granted or revoked
    while the feed is still), so only comparing what the user may see now with the view record can tell.

    The diff's target is the cursor's own seq, since only these tables are walked: the change log past it is
    still to be read for the others, by the pull after this diff ends. Returns the diff under way (None when done)
    and `has_more`."""
    untracked = [t.id for t in wanted if t.deps is None]
    if not untracked:
        return None, False
    if page.room == 0:
        return None, True  # the next pull (the cursor says: no diff under way) re-diffs them
    diff: dict[str, Any] = {"u": seq, "q": untracked, "ph": "a", "k": None, "f": False}
    if await _diff(session, catalog, client_id, diff, page):
        return None, False
    return diff, True


async def _incremental(session: _Session, catalog: Catalog, wanted: list[Table], client_id: str, since: int,
                       until: int, page: _Page) -> tuple[int, bool]:
    conn = await session.as_service()
    asked = page.room
    rows = await conn.fetch(CHANGED_KEYS, since, until, [t.id for t in wanted], asked)
    if not rows:
        return until, False
    by_table: dict[int, dict[str, None]] = {}
    for _seq, tbl, key in rows:
        by_table.setdefault(tbl, {})[key] = None
    for tbl, keys in by_table.items():
        await _compare(session, catalog.tables[tbl], client_id, list(keys), page, held_only=False)
    if len(rows) == asked and rows[-1][0] < until:
        return rows[-1][0], True
    return until, False


async def _compare(session: _Session, table: Table, client_id: str, keys: list[str], page: _Page,
                   *, held_only: bool) -> None:
    """Send what changed among `keys` (held_only: only deletes of keys the client holds)."""
    user = await session.as_user()
    array = "[" + ",".join(keys) + "]"
    if held_only:
        visible = {key: None for (key,) in await user.fetch(table.sql["visible_keys"], array)}
        for key in keys:
            if key not in visible:
                page.put(table, "deleted", key, None, None)
        return
    found = {key: (version, row) for key, version, row in await user.fetch(table.sql["by_keys"], array)}
    service = await session.as_service()
    held = {key: version for key, version in await service.fetch(VIEW_VERSIONS, client_id, table.id, keys)}
    for key in keys:
        now = found.get(key)
        sent = held.get(key)
        if now is not None:
            if sent != now[0]:
                page.put(table, "created" if sent is None else "updated", key, now[0], now[1])
        elif sent is not None:
            page.put(table, "deleted", key, None, None)


async def _diff(session: _Session, catalog: Catalog, client_id: str, diff: dict[str, Any], page: _Page) -> bool:
    """Advance the diff in `diff` (mutated) until the page is full; True when it is complete."""
    while diff["q"]:
        table = catalog.tables.get(diff["q"][0])
        if table is None or not table.served:
            diff["q"].pop(0)
            continue
        if diff["ph"] == "a":
            done = await _diff_visible(session, table, client_id, diff, page)
            if not done:
                return False
            diff["ph"], diff["k"] = "b", None
        if not diff["f"]:
            done = await _diff_held(session, table, client_id, diff, page)
            if not done:
                return False
        diff["q"].pop(0)
        diff["ph"], diff["k"] = "a", None
        for own in ("b", "r", "n", "x"):  # the next table has its own density, storage and restart
            diff.pop(own, None)
    return True


async def _diff_visible(session: _Session, table: Table, client_id: str, diff: dict[str, Any], page: _Page) -> bool:
    """Pass A: visible rows the client lacks or holds in another version, read by ranges of heap blocks.

    `diff["k"]` is the TID to resume after, `diff["n"]` the storage it is a position in (see `_check_storage`);
    `diff["b"]` and `diff["r"]` the blocks read and visible rows found so far in this table, from which the next
    query's range is sized (see `_step`)."""
    user = await session.as_user()
    blocks, storage = await user.fetchrow(table.sql["storage"])
    _check_storage(diff, storage)
    compare = not diff["f"] or diff.get("x", False)
    scan: str | None = None
    while page.room > 0:
        resume = diff["k"] or "(0,0)"
        first_block = _tid(resume)[0]
        if first_block >= blocks:
            return True
        step = _step(diff, page.room)
        user = await session.as_user()
        if scan is None:  # the policy's own condition, where an index can serve it (see narrow.py)
            scan, whole = await narrow.pass_a_scan(user, table, session.role, diff, resume, blocks, page.room)
            if whole:
                step = blocks - first_block
        end_block = min(first_block + step, blocks)
        end = f"({end_block},0)" if end_block < blocks else "(4294967295,0)"
        rows = await user.fetch(scan, resume, end)
        _learn(diff, len(rows), end_block - first_block)
        if not compare:
            full = len(rows) > page.room
            if full:
                # A TID range scan returns rows in heap order, which SQL does not promise: sort them (in C, and
                # nearly free on sorted input) to keep exactly the first `room` of the range.
                rows = sorted(rows, key=_BY_TID)[: page.room]
            page.put_created(table, rows)  # a fresh view record: every visible row is new
        else:
            rows, full = await _compare_range(session, table, client_id, rows, page)
        if full:
            block, offset = rows[-1][3]
            diff["k"] = f"({block},{offset})"
            return False
        diff["k"] = end
        if end_block >= blocks:
            return True
    return False


async def _compare_range(session: _Session, table: Table, client_id: str, rows: list[Any],
                         page: _Page) -> tuple[list[Any], bool]:
    """Put the rows of a range that differ from the view record, in heap order, until the page is full.

    Returns the rows dealt with and whether the page filled before the range ended (the diff then resumes after
    the last of them). Rows that compare equal take no room: a re-diff that finds little changed (the tables
    with untracked policy inputs, re-diffed on every pull) walks the whole table in one answer."""
    if not rows:
        return rows, False
    service = await session.as_service()
    held = {k: v for k, v in await service.fetch(VIEW_VERSIONS, client_id, table.id, [r[0] for r in rows])}
    if len(rows) > page.room:
        rows = sorted(rows, key=_BY_TID)  # see _diff_visible: heap order, which SQL does not promise
    for index, (key, version, row, _position) in enumerate(rows):
        sent = held.get(key)
        if sent != version:
            page.put(table, "created" if sent is None else "updated", key, version, row)
            if page.room == 0 and index + 1 < len(rows):
                return rows[: index + 1], True
    return rows, False


def _check_storage(diff: dict[str, Any], storage: int | None) -> None:
    """Start pass A of the table over if its heap was rewritten since the position in `diff["k"]` was taken.

    A rewrite (VACUUM FULL, CLUSTER, a rewriting ALTER) moves every row to another ctid and writes nothing to
    the change log: resuming at the old position would skip rows for good (or meet rows again; a TRUNCATE, which
    also gets new storage, is logged and re-diffed afterwards, and restarts here too). Walking the table again
    from its start sends nothing twice: the rows sent before compare equal with the view record (VACUUM FULL and
    CLUSTER keep each row's xmin; an ALTER that wrote every row anew sends them again, as updates). A position
    with no storage beside it comes from a cursor issued before it was recorded: a rewrite may have happened
    since, so that table starts over too (once, for the diffs under way when this version was deployed)."""
    if diff["k"] is not None and ("n" not in diff or diff["n"] != storage):
        diff["k"] = None
        diff.pop("b", None)
        diff.pop("r", None)
        # Its view record now holds the rows sent before the rewrite: compare with it, not the fresh path's
        # COPY of every row (pass B stays skipped in a fresh diff: every row it holds was sent by this diff).
        diff["x"] = True
    diff["n"] = storage


FIRST_STEP = 64  # blocks of a table's first query
MAX_STEP = 1 << 20  # blocks per query (8 GB of heap)


def _step(diff: dict[str, Any], room: int) -> int:
    """Blocks for the next query of pass A: those that should hold the room left at the density seen so far in
    this table (rows read past the room are thrown away after RLS and JSON; too few cost another query), but at
    most twice the blocks read so far, since a range is read whole before it is cut to the room and a sparse
    stretch says little about the blocks after it."""
    read, seen = diff.get("b", 0), diff.get("r", 0)
    if not read:
        return FIRST_STEP
    bound = min(2 * read, MAX_STEP)
    if not seen:
        return bound
    return max(1, min(math.ceil(room * read / seen), bound))


def _learn(diff: dict[str, Any], rows: int, blocks: int) -> None:
    diff["b"] = diff.get("b", 0) + blocks
    diff["r"] = diff.get("r", 0) + rows


_BY_TID = operator.itemgetter(3)  # a scan_range row's ctid, (block, offset)


def _tid(text: str) -> tuple[int, int]:
    block, _, offset = text.strip("()").partition(",")
    return int(block), int(offset)


async def _diff_held(session: _Session, table: Table, client_id: str, diff: dict[str, Any], page: _Page) -> bool:
    """Pass B: rows the client holds that it may no longer see."""
    while page.room > 0:
        service = await session.as_service()
        keys = [k for (k,) in await service.fetch(VIEW_HELD, client_id, table.id, diff["k"], CHUNK)]
        if not keys:
            return True
        user = await session.as_user()
        visible = {k for (k,) in await user.fetch(table.sql["visible_keys"], "[" + ",".join(keys) + "]")}
        for key in keys:
            if key not in visible:
                page.put(table, "deleted", key, None, None)
            diff["k"] = key
            if page.room == 0:
                return len(keys) < CHUNK and key == keys[-1]
        if len(keys) < CHUNK:
            return True
    return False
