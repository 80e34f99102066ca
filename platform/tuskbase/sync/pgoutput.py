"""Decoder of the pgoutput logical replication protocol, version 1 (text values, no streaming).

Input: the `data` bytes of the rows `pg_logical_slot_peek_binary_changes(slot, NULL, n, 'proto_version', '1',
'publication_names', ...)` returns, one message per row. Output: `Transaction` objects holding `Change`s.

Why version 1: the SQL interface returns whole transactions anyway (decoding stops only at a commit), so
streaming in-progress transactions (versions 2-4) would only add bookkeeping for aborts; a large transaction
is instead read through a server-side cursor in chunks (see feed.py).

Values arrive in their text form; `Decoder` turns the primary key (and, with `rows=True`, the whole row) into a
JSON object text whose numbers, booleans and json columns are JSON values and everything else JSON strings.
An update lists the columns whose value changed: a TOASTed column the update did not touch arrives as
"unchanged" (`u`) and is not counted; with `rows=True` its value is taken from the old tuple, which REPLICA
IDENTITY FULL always sends complete.

Format reference: https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from msgspec import Raw
from msgspec.json import encode as _encode

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_BEGIN = struct.Struct(">QqI")
_COMMIT = struct.Struct(">bQQq")

# Type oids whose text form is already a JSON value (numbers except NaN and infinities; json, jsonb).
_NUMBER_TYPES = frozenset({20, 21, 23, 26, 700, 701, 1700})
_BOOL = 16
_JSON_TYPES = frozenset({114, 3802})



class ProtocolError(ValueError):
    """A message the decoder cannot read (a protocol version or feature it does not speak)."""


@dataclass(slots=True)
class Relation:
    relid: int
    schema: str
    name: str
    columns: list[str]
    types: list[int]
    key_positions: list[int]
    kinds: list[int] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(slots=True)
class Change:
    relid: int
    op: str  # "I", "U", "D", "T"
    key: str | None  # JSON object text of the primary key columns
    row: str | None  # JSON object text of the new row (I, U)
    cols: list[str] | None  # U: columns whose value changed


@dataclass(slots=True)
class Transaction:
    xid: int
    final_lsn: int  # LSN of the commit record
    commit_time: datetime
    end_lsn: int = 0  # LSN just after the commit record: where the slot may advance to
    changes: list[Change] = field(default_factory=list)


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_int(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


class Decoder:
    """Stateful: Relation messages describe the tables the following changes refer to.

    `on_transaction` receives each complete transaction; `skip_before` (an LSN) drops transactions whose commit
    record lies before it (they were persisted by an earlier run).
    """

    def __init__(self, key_columns: Callable[[int], list[str] | None] = lambda _relid: None,
                 rows: bool = False) -> None:
        # REPLICA IDENTITY FULL flags every column as key in Relation messages: the primary key comes from
        # the catalog instead (`key_columns(relid)`), the flags only when it has none.
        self.key_columns = key_columns
        # Row images are optional: the feed does not keep them (a pull always reads rows under RLS, and a merge
        # needs only which columns changed), so it skips their cost.
        self.rows = rows
        self.relations: dict[int, Relation] = {}
        self.current: Transaction | None = None
        self.skipping = False
        self.skip_before = 0

    def feed(self, data: bytes) -> Transaction | None:
        """Decode one message; returns the transaction it completes, if any."""
        kind = data[0]
        if kind == 0x42:  # B
            final_lsn, micros, xid = _BEGIN.unpack_from(data, 1)
            self.current = Transaction(xid, final_lsn, PG_EPOCH + timedelta(microseconds=micros))
            self.skipping = final_lsn < self.skip_before
            return None
        if kind == 0x43:  # C
            _flags, _commit_lsn, end_lsn, _ts = _COMMIT.unpack_from(data, 1)
            done, self.current = self.current, None
            if done is None:
                raise ProtocolError("commit without begin")
            done.end_lsn = end_lsn
            if self.skipping:
                self.skipping = False
                return None
            return done
        if kind == 0x52:  # R
            self._relation(data)
            return None
        if kind in (0x49, 0x55, 0x44):  # I U D
            if not self.skipping:
                self._row_change(kind, data)
            return None
        if kind == 0x54:  # T
            if not self.skipping:
                self._truncate(data)
            return None
        if kind in (0x59, 0x4F, 0x4D):  # Y type, O origin, M message: nothing to persist
            return None
        raise ProtocolError(f"unexpected pgoutput message {chr(kind)!r}")

    # -- messages --------------------------------------------------------------------------------------

    def _relation(self, data: bytes) -> None:
        relid = _U32.unpack_from(data, 1)[0]
        pos = 5
        schema, pos = _cstring(data, pos)
        name, pos = _cstring(data, pos)
        pos += 1  # replica identity setting
        ncols = _I16.unpack_from(data, pos)[0]
        pos += 2
        columns, types, keys = [], [], []
        for index in range(ncols):
            flags = data[pos]
            column, pos = _cstring(data, pos + 1)
            type_oid = _U32.unpack_from(data, pos)[0]
            pos += 8  # type oid, type modifier
            columns.append(column)
            types.append(type_oid)
            if flags & 1:
                keys.append(index)
        names = self.key_columns(relid)
        if names:
            keys = [columns.index(n) for n in names if n in columns]
        self.relations[relid] = Relation(relid, schema, name, columns, types, keys, _converters(types))

    def _row_change(self, kind: int, data: bytes) -> None:
        relid = _U32.unpack_from(data, 1)[0]
        relation = self.relations.get(relid)
        if relation is None:
            raise ProtocolError(f"change for relation {relid} before its Relation message")
        pos = 5
        old = None
        marker = data[pos]
        if marker in (0x4B, 0x4F):  # K key, O old tuple
            old, pos = _tuple(data, pos + 1)
            marker = data[pos] if pos < len(data) else 0
        new = None
        if marker == 0x4E:  # N
            new, pos = _tuple(data, pos + 1)
        tx = self.current
        if tx is None:
            raise ProtocolError("change outside a transaction")
        if kind == 0x44:  # D
            tx.changes.append(Change(relid, "D", _key(relation, old), None, None))
            return
        if new is None:
            raise ProtocolError("insert or update without a new tuple")
        cols = None
        if kind == 0x55 and old is not None:
            cols = []
            for index, value in enumerate(new):
                if value is _UNCHANGED:
                    new[index] = old[index]
                elif value != old[index]:
                    cols.append(relation.columns[index])
        row = _row(relation, new) if self.rows else None
        tx.changes.append(Change(relid, chr(kind), _key(relation, new), row, cols))

    def _truncate(self, data: bytes) -> None:
        count = _I32.unpack_from(data, 1)[0]
        tx = self.current
        if tx is None:
            raise ProtocolError("truncate outside a transaction")
        for index in range(count):
            relid = _U32.unpack_from(data, 6 + 4 * index)[0]
            tx.changes.append(Change(relid, "T", None, None, None))


class _Unchanged:
    __slots__ = ()


_UNCHANGED = _Unchanged()


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(0, pos)
    return data[pos:end].decode(), end + 1


def _tuple(data: bytes, pos: int) -> tuple[list, int]:
    ncols = _I16.unpack_from(data, pos)[0]
    pos += 2
    values: list = []
    append = values.append
    for _ in range(ncols):
        kind = data[pos]
        if kind == 0x74:  # t
            length = _I32.unpack_from(data, pos + 1)[0]
            start = pos + 5
            pos = start + length
            append(data[start:pos].decode())
        elif kind == 0x6E:  # n
            append(None)
            pos += 1
        elif kind == 0x75:  # u
            append(_UNCHANGED)
            pos += 1
        else:
            raise ProtocolError(f"tuple value kind {chr(kind)!r} (binary values are not requested)")
    return values, pos


def _converters(types: list[int]) -> list[int]:
    """Per column: 0 string, 1 number, 2 boolean, 3 JSON text."""
    return [1 if t in _NUMBER_TYPES else 2 if t == _BOOL else 3 if t in _JSON_TYPES else 0 for t in types]


def _value(kind: int, text: str) -> Any:
    if kind == 0:
        return text
    if kind == 1:
        return text if text in ("NaN", "Infinity", "-Infinity") else Raw(text)
    if kind == 2:
        return text == "t"
    return Raw(text)


def _row(relation: Relation, values: list) -> str:
    row = {}
    kinds = relation.kinds
    for index, name in enumerate(relation.columns):
        value = values[index]
        if value is None:
            row[name] = None
        elif value is _UNCHANGED:
            continue  # no old tuple to take it from (not REPLICA IDENTITY FULL): leave it out
        else:
            kind = kinds[index]
            row[name] = value if kind == 0 else _value(kind, value)
    return _encode(row).decode()


def _key(relation: Relation, values: list | None) -> str | None:
    if values is None:
        return None
    key = {}
    for index in relation.key_positions:
        value = values[index]
        name = relation.columns[index]
        key[name] = None if value is None or value is _UNCHANGED else _value(relation.kinds[index], value)
    return _encode(key).decode()
