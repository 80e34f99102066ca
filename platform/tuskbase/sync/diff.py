"""The records of one pull answer (`Page`) and the passes that fill it: the comparison of keys with the view record
(`compare_keys`) and the diff (`run_diff`: pass A, every visible row by heap block ranges; pass B, every held row
checked for visibility). How they fit together: pull.py, and ARCHITECTURE.md, "Sync"."""

from __future__ import annotations

import json
import math
import operator
from itertools import repeat
from typing import Any

from tuskbase.caller import Stepping
from tuskbase.sync import narrow
from tuskbase.sync.catalog import Catalog, Table
from tuskbase.sync.wire import TableChanges

CHUNK = 2000
VIEW_VERSIONS = """
select key, version from sync.client_rows
where client_id = $1 and tbl = $2 and key = any($3::text[])
"""
VIEW_HELD = """
select key from sync.client_rows
where client_id = $1 and tbl = $2 and version is not null and ($3::text is null or key > $3)
order by key limit $4
"""


class Page:
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


async def compare_keys(session: Stepping, table: Table, client_id: str, keys: list[str], page: Page,
                   *, held_only: bool) -> None:
    """Send what changed among `keys` (held_only: only deletes of keys the client holds)."""
    user = await session.as_caller()
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


async def run_diff(session: Stepping, catalog: Catalog, client_id: str, diff: dict[str, Any], page: Page) -> bool:
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


async def _diff_visible(session: Stepping, table: Table, client_id: str, diff: dict[str, Any], page: Page) -> bool:
    """Pass A: visible rows the client lacks or holds in another version, read by ranges of heap blocks.

    `diff["k"]` is the TID to resume after, `diff["n"]` the storage it is a position in (see `_check_storage`);
    `diff["b"]` and `diff["r"]` the blocks read and visible rows found so far in this table, from which the next
    query's range is sized (see `_step`)."""
    user = await session.as_caller()
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
        user = await session.as_caller()
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


async def _compare_range(session: Stepping, table: Table, client_id: str, rows: list[Any],
                         page: Page) -> tuple[list[Any], bool]:
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


async def _diff_held(session: Stepping, table: Table, client_id: str, diff: dict[str, Any], page: Page) -> bool:
    """Pass B: rows the client holds that it may no longer see."""
    while page.room > 0:
        service = await session.as_service()
        keys = [k for (k,) in await service.fetch(VIEW_HELD, client_id, table.id, diff["k"], CHUNK)]
        if not keys:
            return True
        user = await session.as_caller()
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
