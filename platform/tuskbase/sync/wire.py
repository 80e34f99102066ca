"""What a pull answers and what its cursor holds: the wire types of /sync/v1/pull and the cursor codec."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

from tuskbase.sync.errors import BAD_CURSOR, SyncError


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
