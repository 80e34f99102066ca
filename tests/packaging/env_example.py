"""Rewrite the settings reference at the end of tuskbase.env.example from `tuskbase.config` (run after adding
settings).

    .venv/bin/python -m tests.packaging.env_example          # print the reference section
    .venv/bin/python -m tests.packaging.env_example --write  # replace it in tuskbase.env.example

Everything above the marker line is written by hand and kept as it is. The stack's own variables and the
secrets are in .env.example, written by hand.
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path

from tuskbase.config import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]

MARKER = "# --- every other setting, with its default "
# Set by docker-compose.yml, or secrets described in .env.example.
DESCRIBED_ABOVE = {
    "database_url", "app_dir", "data_dir", "host", "port", "db_port", "jwt_secret", "authenticator_password",
    "broker_url",
}
# Where the image's default differs from the code's.
IMAGE_DEFAULTS = {"log_format": ("json", " The image defaults to json.")}


def reference() -> str:
    lines: list[str] = []
    for f in dataclasses.fields(Settings):
        if f.name in DESCRIBED_ABOVE:
            continue
        default = f.default
        doc = f.metadata.get("doc", "").replace("`", "")
        if f.name in IMAGE_DEFAULTS:
            default, note = IMAGE_DEFAULTS[f.name]
            doc += note
        elif isinstance(default, bool):
            default = "true" if default else "false"
        elif default is None or default is dataclasses.MISSING:
            default = ""
        lines.extend("# " + line for line in textwrap.wrap(doc, 110))
        lines.extend([f"# {PREFIX}{f.name.upper()}={default}", ""])
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    if "--write" not in argv:
        print(reference(), end="")
        return 0
    path = ROOT / "tuskbase.env.example"
    text = path.read_text()
    head, found, _ = text.partition(MARKER)
    if not found:
        raise SystemExit(f"{path}: marker line not found: {MARKER!r}")
    marker_line = MARKER + "-" * (111 - len(MARKER))  # as wide as the other section lines
    path.write_text(head + marker_line + "\n\n" + reference())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
