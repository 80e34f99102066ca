"""Pull: what a user may see now, as the difference with what this client was last sent.

Callable from any route (the HTTP one is `POST /sync/v1/pull` in routes.py)::

    result = await pull(pool, caller, client_id="device-1", cursor=None, limit=None, tables=None,
                        settings=settings)
    result.changes      # {public table name: TableChanges(created=[row json text], updated=[...], deleted=[key])}
    result.cursor       # opaque text, to send back on the next pull (None with reset)
    result.has_more     # pull again at once with the new cursor
    result.reset        # the client must drop its synced data and pull again with no cursor
    result.body()       # the JSON answer of /sync/v1/pull, as bytes

`pool` is the API's asyncpg pool (login role `authenticator`), `caller` the verified `tuskbase.caller.Caller`
(as `caller.identify` returns it). Optional `quick`: a `QuickConnections`
(routes.py keeps one in `app.state.sync_quick`) for the one-round-trip answer when nothing is new; without it
that answer uses `pool`. `tables`: public table names (`todos`, or `schema.table` outside public); None means
every served table the caller's role may read. `limit`: records per answer (default and maximum are settings).
Raises `errors.SyncError` (400/401/403 with a SYNCnnn code).

This module is the algorithm; `wire.py` holds the answer's types and the cursor codec, `diff.py` the page of
records and the passes that fill it, `connections.py` the quick connections.

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

import hashlib
import json
import secrets
from itertools import repeat
from typing import Any

import asyncpg

from tuskbase.caller import Caller, Stepping, service_step
from tuskbase.config import Settings
from tuskbase.sync import catalog as catalog_module
from tuskbase.sync.catalog import Catalog, Table
from tuskbase.sync.connections import QuickConnections
from tuskbase.sync.diff import Page, compare_keys, run_diff
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
from tuskbase.sync.wire import Cursor, PullResult, TableChanges

VOLATILE_CLAIMS = ("iat", "exp", "nbf", "jti", "session_id")

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
HAS_VIEW = "select exists (select 1 from sync.client_rows where client_id = $1 and version is not null)"
RECORD = """
insert into sync.client_rows as r (client_id, tbl, key, version, pull_no)
select $1, t, k, v, $2 from unnest($3::int[], $4::text[], $5::bigint[]) as u(t, k, v)
on conflict (client_id, tbl, key) do update
set prev_version = case when r.pull_no < excluded.pull_no then r.version else r.prev_version end,
    version = excluded.version, pull_no = excluded.pull_no
"""


def claims_hash(claims: dict[str, Any]) -> str:
    stable = {k: v for k, v in claims.items() if k not in VOLATILE_CLAIMS}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:16]


# Polling clients present the same token, catalog and tables again and again: the fingerprint of a combination
# is kept (keyed by the claims' JSON text, which the claims cache hands out per token), bounded.
_FINGERPRINTS: dict[tuple[str, str, tuple[int, ...]], str] = {}
_FINGERPRINTS_MAX = 10_000


def view_fingerprint(catalog: Catalog, caller: Caller, wanted: list[Table], *, cached: bool = False) -> str:
    """What a client's view was computed with: catalog (tables, policies, functions), claims and the tables asked
    for. A pull that sees another fingerprint re-diffs (a new table in the set, a policy change, new claims)."""
    ids = tuple(t.id for t in wanted)
    key = (catalog.fingerprint, caller.claims_json, ids) if cached else None
    found = _FINGERPRINTS.get(key) if key is not None else None
    if found is None:
        tables = ",".join(map(str, ids))
        found = hashlib.sha256(f"{catalog.fingerprint}.{claims_hash(caller.claims)}.{tables}".encode()
                               ).hexdigest()[:20]
        if key is not None:
            if len(_FINGERPRINTS) >= _FINGERPRINTS_MAX:
                _FINGERPRINTS.clear()
            _FINGERPRINTS[key] = found
    return found


def client_lock(client_id: str) -> str:
    """The advisory lock (by its text) that serializes one client's pulls and pushes."""
    return "tuskbase_sync_client:" + client_id


def check_client_id(client_id: Any) -> str:
    if not isinstance(client_id, str) or not 1 <= len(client_id) <= 128 or "\x00" in client_id:
        raise SyncError(BAD_CLIENT, "client_id must be a string of 1 to 128 characters, without NUL")
    return client_id


async def pull(
    pool: Any,
    caller: Caller,
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
            quiet = await quick.run(_nothing_new, given, caller, tables, database_key)
        else:
            async with pool.acquire() as conn:
                quiet = await _nothing_new(conn, given, caller, tables, database_key)
        if quiet is not None:
            return quiet
    try:
        return await _transaction(pool, caller, client_id, given, limit, tables, database_key)
    except _Reseen:
        # Rare (a row changed during a paged first sync): answer again, comparing with the view record. The
        # cursor is decoded anew, since the first try advanced the diff it carries.
        given = Cursor.decode(cursor, client_id) if cursor else None
        return await _transaction(pool, caller, client_id, given, limit, tables, database_key, exact=True)


async def _transaction(pool: Any, caller: Caller, client_id: str, given: Cursor | None, limit: int,
                       tables: list[str] | None, database_key: str, *, exact: bool = False) -> PullResult:
    async with pool.acquire() as conn, conn.transaction():
        session = await service_step(conn, caller, client_lock(client_id))
        catalog = await catalog_module.cached(conn, database_key)
        wanted = _requested(catalog, tables, caller.role)
        return await _pull(session, catalog, wanted, caller, client_id, given, limit, exact)


async def _nothing_new(conn: Any, given: Cursor, caller: Caller, tables: list[str] | None,
                       database_key: str) -> PullResult | None:
    """The answer when the change log has nothing past the cursor and nothing else moved; None otherwise.

    One round trip (`sync.client_state`), no transaction, no synced table read."""
    owner, pull_no, nonce, _prev, seen_hours, seq, pruned_seq, epoch = await conn.fetchrow(CLIENT_FAST, given.client)
    if (owner != caller.user_key or (pull_no, nonce) != (given.pull_no, given.nonce) or seq != given.seq
            or given.seq < pruned_seq or epoch != given.epoch or seen_hours is None or seen_hours >= 1):
        return None
    catalog = catalog_module.fresh(database_key)  # reloading it needs the service role: the slow path does
    if catalog is None:
        return None
    wanted = _requested(catalog, tables, caller.role)
    if any(t.deps is None for t in wanted):
        return None  # a policy input outside the change log may have moved: `_pull` re-diffs those tables
    if given.fingerprint != view_fingerprint(catalog, caller, wanted, cached=True):
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


async def _pull(session: Stepping, catalog: Catalog, wanted: list[Table], caller: Caller, client_id: str,
                given: Cursor | None, limit: int, exact: bool) -> PullResult:
    """One answer. `exact`: compare every row with the view record, even in a diff that began with none."""
    conn = session.conn
    owner, pull_no, nonce, prev_nonce, feed_seq, pruned_seq, epoch = await conn.fetchrow(CLIENT_STATE, client_id)
    me = caller.user_key
    if owner is None:
        await conn.execute(NEW_CLIENT, client_id, me)
        pull_no, nonce, prev_nonce = 0, None, None
    elif owner != me:
        raise SyncError(CLIENT_OWNED, "this client_id is registered to another user")
    fingerprint = view_fingerprint(catalog, caller, wanted)
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

    page = Page(limit, wanted)
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
        finished = await run_diff(session, catalog, client_id, diff, page)
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


async def _record(conn: Any, client_id: str, pull_no: int, page: Page) -> None:
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


async def _rediff_untracked(session: Stepping, catalog: Catalog, wanted: list[Table], client_id: str, seq: int,
                            page: Page) -> tuple[dict[str, Any] | None, bool]:
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
    if await run_diff(session, catalog, client_id, diff, page):
        return None, False
    return diff, True


async def _incremental(session: Stepping, catalog: Catalog, wanted: list[Table], client_id: str, since: int,
                       until: int, page: Page) -> tuple[int, bool]:
    conn = await session.as_service()
    asked = page.room
    rows = await conn.fetch(CHANGED_KEYS, since, until, [t.id for t in wanted], asked)
    if not rows:
        return until, False
    by_table: dict[int, dict[str, None]] = {}
    for _seq, tbl, key in rows:
        by_table.setdefault(tbl, {})[key] = None
    for tbl, keys in by_table.items():
        await compare_keys(session, catalog.tables[tbl], client_id, list(keys), page, held_only=False)
    if len(rows) == asked and rows[-1][0] < until:
        return rows[-1][0], True
    return until, False
