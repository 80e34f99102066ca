"""The documentation stays true to the code: every client-facing error code is documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

from tuskbase.sync import errors as sync_errors

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_sync_error_code_is_in_the_readme_with_its_status():
    kinds = [value for value in vars(sync_errors).values()
             if isinstance(value, tuple) and len(value) == 2 and str(value[0]).startswith("SYNC")]
    assert len(kinds) >= 19
    documented = dict(re.findall(r"^\| (SYNC\d{3}) \| (\d{3}) \|", README, flags=re.M))
    missing = {code: status for code, status in kinds if documented.get(code) != str(status)}
    assert not missing, f"README's sync error table lacks or misstates: {missing}"
