"""Which connected users may see a batch's inserted or updated rows, without asking RLS once per (user, row).

The live hub (live.py) must know, for each feed batch, the connected users who may see one of the rows it inserted
or updated. Only Postgres can answer, under each user's own RLS, and asking it costs one check per user. Two facts
keep the number of checks down without guessing:

1. **Rows alike for the policy are one question.** A table's policies read a changed row only through the columns
   they name (pglast finds them in the policy expressions). Within one snapshot, two rows with the same values in
   those columns are visible to exactly the same users, whatever the policies call. So the changed rows of a table
   are grouped by those values (their *projection*), and one row per group is checked: fifteen todos inserted into
   one list are one check per user, not fifteen. A policy that reads the whole row or a system column makes every
   row its own group.
2. **An answer holds until what decides it changes.** The answer for (table, projection, user) can change only
   when a table the policies read changes (`catalog.Table.deps`, found through the SQL functions they call), when
   the policies or functions change (the catalog fingerprint) or when the user's claims change (a new token). So
   answers are kept (`VisibilityCache`) and dropped on exactly those events; a table whose dependencies are not
   known (a policy calling a non-SQL function or reading an untracked table) is never cached. Entries also expire
   after `sync_live_visibility_cache_seconds`, for policies that read the clock. A new connection costs one check
   for itself, not one for everyone.

The cache only spares checks: every answer in it came from the user's RLS, in a snapshot that includes every
change of the log up to the batch it was computed for, and every later change that could alter it removes it
before the next batch is looked at.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pglast
from pglast import ast
from pglast.visitors import Visitor

from tuskbase.schema import quote_ident
from tuskbase.sync.catalog import Catalog, Table

SYSTEM_COLUMNS = frozenset({"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"})
# Groups kept per table at most; the oldest go first (a table written in many distinct groups, e.g. one list per
# user, keeps the recent ones). Users are bits of a bitmap per group: 10,000 groups x 10,000 users ~ 12 MB.
MAX_ENTRIES_PER_TABLE = 10_000
# Distinct users numbered at most before the numbering (and every answer) starts again, at the next batch.
MAX_USERS = 20_000


class _ColumnRefs(Visitor):
    def __init__(self, table: Table) -> None:
        super().__init__()
        self.table = table
        self.columns: set[str] = set()
        self.whole_row = False

    def visit_ColumnRef(self, _ancestors: Any, node: ast.ColumnRef) -> None:
        last = node.fields[-1]
        if not isinstance(last, ast.String):  # `t.*`: a whole row, maybe the policy's own
            self.whole_row = True
            return
        name = last.sval
        if name in self.table.columns:
            self.columns.add(name)  # a same-named column of a subquery's table only makes groups finer
        elif name in SYSTEM_COLUMNS or (len(node.fields) == 1 and name == self.table.name):
            self.whole_row = True


def policy_columns(table: Table) -> list[str] | None:
    """The columns of `table` its policies read, in table order ([] : none, every row is alike); None: the
    policies may read more of a row than named columns (a whole-row or system column, or an expression pglast
    cannot parse), so each row is its own group."""
    if not table.rls:
        return []
    refs = _ColumnRefs(table)
    try:
        for expression in table.policies:
            if expression:
                refs(pglast.parse_sql(f"select {expression}"))
    except pglast.parser.ParseError:
        return None
    if refs.whole_row:
        return None
    return [name for name in table.columns if name in refs.columns]


def representatives_sql(table: Table) -> str:
    """SQL answering (projection digest, key) for one existing row per group among the given keys (a jsonb array
    of key objects, $1). Rows gone since the change are absent: nobody can see them. Run as service_role.
    Identifiers come from the catalogs, each through quote_ident."""
    q = table.qualified
    pk = [quote_ident(c) for c in table.pk]
    key = "jsonb_build_object(" + ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}', t.{qc}"
                                            for c, qc in zip(table.pk, pk, strict=True)) + ")::text"
    columns = policy_columns(table)
    if columns is None:
        group = f"md5({key})"
    elif not columns:
        group = "''"
    else:
        group = "md5(jsonb_build_array(" + ", ".join(f"t.{quote_ident(c)}" for c in columns) + ")::text)"
    join = " and ".join(f"t.{c} = k.{c}" for c in pk)
    return (f"select distinct on (g) g, key from (select {group} as g, {key} as key from {q} t "
            f"join jsonb_populate_recordset(null::{q}, $1::jsonb) k on {join}) s order by g, key")


@dataclass
class Entry:
    """The answers for one (table, projection): users checked (bit i: user number i), those who may see it."""

    born: float
    checked: bytearray = field(default_factory=bytearray)
    seeing: set[str] = field(default_factory=set)

    def has(self, number: int) -> bool:
        byte = number >> 3
        return byte < len(self.checked) and bool(self.checked[byte] & (1 << (number & 7)))

    def set(self, number: int, value: bool = True) -> None:
        byte = number >> 3
        if byte >= len(self.checked):
            self.checked.extend(bytes(byte + 1 - len(self.checked)))
        if value:
            self.checked[byte] |= 1 << (number & 7)
        else:
            self.checked[byte] &= ~(1 << (number & 7)) & 0xFF


class VisibilityCache:
    """Answers of RLS per (table id, projection digest, user key), dropped when what decides them changes."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.fingerprint: str | None = None
        self.entries: dict[int, dict[str, Entry]] = {}
        self.generations: dict[int, int] = {}
        self.cacheable: set[int] = set()
        self.sql: dict[int, str] = {}
        self.numbers: dict[str, int] = {}
        self.hits = 0
        self.checks = 0

    def clear(self) -> None:
        for table_id in list(self.entries):
            self._drop(table_id)
        self.numbers.clear()

    def _number(self, user: str) -> int:
        number = self.numbers.get(user)
        if number is None:
            number = self.numbers[user] = len(self.numbers)
        return number

    def _drop(self, table_id: int) -> None:
        self.entries.pop(table_id, None)
        self.generations[table_id] = self.generations.get(table_id, 0) + 1

    def changed(self, catalog: Catalog, table_ids: set[int]) -> None:
        """A batch changed these tables (sync.tables ids): drop the answers that depended on them. A new catalog
        (a policy, function or table definition changed) drops everything."""
        if len(self.numbers) >= MAX_USERS:
            self.clear()
        if catalog.fingerprint != self.fingerprint:
            self.fingerprint = catalog.fingerprint
            self.clear()
            self.sql.clear()
            self.cacheable = {t.id for t in catalog.tables.values()
                              if t.served and t.deps is not None and self.ttl > 0}
        for table in catalog.tables.values():
            if table.id in self.cacheable and table.deps & table_ids:  # type: ignore[operator]
                self._drop(table.id)  # also makes answers being computed meanwhile unstorable

    def forget_user(self, user: str) -> None:
        """The user's claims changed (a new token): its answers may too."""
        number = self.numbers.get(user)
        if number is None:
            return
        for entries in self.entries.values():
            for entry in entries.values():
                entry.set(number, False)
                entry.seeing.discard(user)

    def generation(self, table_id: int) -> int:
        return self.generations.get(table_id, 0)

    def representatives(self, table: Table) -> str:
        sql = self.sql.get(table.id)
        if sql is None:
            sql = self.sql[table.id] = representatives_sql(table)
        return sql

    def lookup(self, table_id: int, group: str, users: list[str]) -> tuple[set[str], list[str]]:
        """(users known to see rows of this group, users whose answer is not known)."""
        entry = self._entry(table_id, group, create=False)
        if entry is None:
            return set(), list(users)
        unknown = [u for u in users if not entry.has(self._number(u))]
        self.hits += len(users) - len(unknown)
        return {u for u in users if u in entry.seeing}, unknown

    def store(self, table_id: int, generation: int, group: str, checked: list[str], seeing: set[str]) -> None:
        """Keep answers computed while the table's generation was `generation` (else they may predate a change)."""
        self.checks += len(checked)
        if table_id not in self.cacheable or self.generation(table_id) != generation:
            return
        entry = self._entry(table_id, group, create=True)
        for user in checked:
            entry.set(self._number(user))
        entry.seeing.update(u for u in checked if u in seeing)

    def _entry(self, table_id: int, group: str, *, create: bool) -> Entry | None:
        entries = self.entries.get(table_id)
        entry = entries.get(group) if entries else None
        now = time.monotonic()
        if entry is not None and now - entry.born > self.ttl:
            del entries[group]  # type: ignore[union-attr]
            entry = None
        if entry is None and create:
            entries = self.entries.setdefault(table_id, {})
            if len(entries) >= MAX_ENTRIES_PER_TABLE:
                del entries[next(iter(entries))]
            entry = entries[group] = Entry(now)
        return entry
