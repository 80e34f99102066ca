"""The auth service's database access: its own role, its own transactions.

Auth statements run as `tuskbase_auth` (granted to the API's login role), never as a request role: the
auth tables are invisible to anon, authenticated and service_role. `transaction(pool)` is
`caller.auth_transaction`, where every role switch lives. SQL lives as named constants beside the flow that
runs it; values are always bound.
"""

from __future__ import annotations

import json
from typing import Any

from tuskbase.caller import auth_transaction

transaction = auth_transaction


def load_json(raw: str | None) -> Any:
    return json.loads(raw) if raw else {}


def dump_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)
