"""JSON from sync clients, with its nesting bounded before it is parsed.

    body = decode_object(raw, settings)           # a sync request body: a JSON object, else SyncError
    value = decode(raw, settings, kind=BAD_RECORD) # any JSON value; `kind` is the surface's malformed-body code
    too_deep(text_or_bytes, limit)                 # the check alone (the WatermelonDB `migration` parameter)

Why a bound: msgspec and the json module parse nested arrays and objects recursively, and give up with a
RecursionError near Python's recursion limit (about 1,000 levels), which is no decode error: without this check a
body of 100,000 `[` was a 500. Everything after parsing (NUL checks, digests, SQL parameters) may recurse too. The
bound (`TUSKBASE_SYNC_JSON_MAX_DEPTH`) is checked on the raw text before any parser sees it: string literals are
cut out (brackets inside them do not nest), and the running count of the brackets left gives the depth,
all in C. Bodies
with fewer opening brackets than the bound (every pull, most small pushes) skip the scan.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any

import msgspec

from tuskbase.config import Settings
from tuskbase.sync.errors import BAD_REQUEST, TOO_DEEP, SyncError

_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_STEP = [0] * 256
for _open in b"[{":
    _STEP[_open] = 1
for _close in b"]}":
    _STEP[_close] = -1


def too_deep(raw: bytes | str, limit: int) -> bool:
    """Whether arrays and objects in `raw` nest deeper than `limit` (malformed text is judged as if it parsed)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    # Cut the string literals out, all in C: drop escaped backslashes, then escaped quotes (JSON escapes pair from
    # the left, as bytes.replace does), so that every quote left opens or closes a string; keep only quotes and
    # brackets; every other piece between quotes was inside a string.
    structure = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    brackets = b"".join(structure.split(b'"')[::2])
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


_DEFAULT_DEPTH: int = Settings.__dataclass_fields__["sync_json_max_depth"].default


def check_depth(raw: bytes | str, settings: Settings | None, *, what: str = "the body",
                kind: tuple[str, int] = TOO_DEEP) -> None:
    """Refuse `raw` with `kind` if it nests too deeply (`settings` None: the setting's default bound)."""
    limit = settings.sync_json_max_depth if settings is not None else _DEFAULT_DEPTH
    if too_deep(raw, limit):
        raise SyncError(kind, f"{what} nests arrays and objects deeper than {limit} levels "
                              "(TUSKBASE_SYNC_JSON_MAX_DEPTH)")


def decode(raw: bytes, settings: Settings, *, kind: tuple[str, int] = BAD_REQUEST) -> Any:
    """A JSON value; deeper than the bound: SYNC108; not JSON: `kind`."""
    check_depth(raw, settings)
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise SyncError(kind, "the body must be JSON") from None
    except RecursionError:  # a bound set above what the parser can take
        raise SyncError(TOO_DEEP, "the body nests arrays and objects too deeply") from None


def decode_object(raw: bytes, settings: Settings) -> dict[str, Any]:
    """A sync request body: a JSON object."""
    body = decode(raw, settings)
    if not isinstance(body, dict):
        raise SyncError(BAD_REQUEST, "the body must be a JSON object")
    return body
