"""Which Postgres role a statement runs as is decided in one module: `tuskbase/caller.py` (ARCHITECTURE.md,
"Identity and RLS"). A role switch anywhere else under platform/ fails here, in any spelling."""

from __future__ import annotations

import re
from pathlib import Path

PLATFORM = Path(__file__).resolve().parents[2] / "platform"
HOME = PLATFORM / "tuskbase" / "caller.py"
# set_config('role', ...) with either quote, SET ROLE, SET LOCAL ROLE, SET SESSION ROLE and RESET ROLE.
ROLE_SWITCH = re.compile(r"""set_config\s*\(\s*['"]role['"]|\b(re)?set\s+((local|session)\s+)?role\b""", re.I)


def switches(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if ROLE_SWITCH.search(line)]


def test_the_pattern_sees_every_spelling_and_nothing_else():
    for spelling in ("select set_config('role', $1, true)", 'SELECT set_config( "role", $1, false)',
                     "set role authenticated", "SET LOCAL ROLE service_role", "set session role anon",
                     "RESET ROLE; RESET request.jwt.claims"):
        assert switches(spelling), spelling
    for innocent in ("select set_config('request.jwt.claims', $1, true)", "claims['role']",
                     "the caller's role is set once", "asset roles"):
        assert not switches(innocent), innocent


def test_only_caller_py_switches_roles():
    found = {}
    for path in sorted(PLATFORM.rglob("*")):
        if not path.is_file() or path == HOME or "__pycache__" in path.parts:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if hits := switches(text):
            found[str(path.relative_to(PLATFORM))] = hits
    assert found == {}, "role switches outside tuskbase/caller.py (route them through it): " + repr(found)
    assert switches(HOME.read_text())  # the home is where they are, so the scan above reads real code
