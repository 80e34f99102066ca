"""A regular install works outside the source tree: the wheel carries the platform migrations and policies.

The wheel is built (`pip wheel --no-deps`, as `pip install .` in the Dockerfile builds it) from a copy of the image's
build context, so it also proves that .dockerignore lets in all the build needs. It is installed into a fresh venv
whose only way to the dependencies is a .pth line naming this interpreter's site-packages: nothing is downloaded but
the build backend, and the source tree is on no path. Its `tuskbase` command then runs from a folder outside the
source tree: `migrate` on an empty database, `policies lint`.

policies/ holds no file yet, so the copy gets one stand-in platform policy; without it the test could not tell
whether policies/ ships.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.conftest import TEST_JWT_SECRET, create_database, drop_database
from tests.packaging.support import ROOT
from tests.packaging.test_dockerfile import build_context
from tuskbase.migrate import SCHEMA_SNAPSHOT

# A platform policy file for the copy only: the bookkeeping table exists in every migrated database, and no real
# platform policy is about it.
STAND_IN_POLICY = ("tuskbase.schema_migrations.sql",
                   "alter table tuskbase.schema_migrations enable row level security;\n")
# sql/schema.sql is the generated dump of what the migrations give, not a migration.
PLATFORM_MIGRATIONS = sorted(path.name for path in (ROOT / "sql").glob("*.sql") if path.name != SCHEMA_SNAPSHOT)


def platform_policies() -> list[str]:
    return sorted({*(path.name for path in (ROOT / "policies").glob("*.sql")), STAND_IN_POLICY[0]})


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    site_packages: Path
    outside: Path  # a working folder outside the source tree

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=self.outside, env=env or clean_environment(), capture_output=True, text=True,
                              timeout=120)


def clean_environment(**settings: str) -> dict[str, str]:
    """This process's environment without anything that would point Python or Tuskbase at the source tree."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("TUSKBASE_") and name not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    return {**env, **settings}


def checked(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    top = tmp_path_factory.mktemp("wheel-install")
    source = top / "context"
    for path in build_context():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, source / path)
    name, text = STAND_IN_POLICY
    assert not (ROOT / "policies" / name).exists(), "a real platform policy took the stand-in's name: rename it"
    (source / "policies").mkdir(exist_ok=True)
    (source / "policies" / name).write_text(text)

    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    checked(subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", str(top / "dist"), str(source)],
                           cwd=top, env=clean_environment(), capture_output=True, text=True, timeout=300))
    (wheel,) = (top / "dist").glob("tuskbase-*.whl")

    venv = top / "venv"
    checked(subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True))
    python = venv / "bin" / "python"
    checked(subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
                           cwd=top, env=clean_environment(), capture_output=True, text=True, timeout=120))
    site_packages = Path(checked(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], capture_output=True, text=True,
    )).strip())
    # A .pth line only adds the folder to sys.path, after the venv's own: the installed tuskbase comes first, and the
    # .pth files in that folder (such as the editable install's finder) are not run.
    (site_packages / "project-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    outside = top / "elsewhere"
    outside.mkdir()
    return Installed(wheel, venv, site_packages, outside)


@pytest.fixture
def empty_database(pg_server) -> Iterator[str]:
    name = create_database(pg_server, "template0")
    try:
        yield pg_server.dsn(name)
    finally:
        drop_database(pg_server, name)


def test_the_wheel_carries_the_platform_migrations_and_policies(installed: Installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert {f"tuskbase/_sql/{name}" for name in PLATFORM_MIGRATIONS} <= names
    assert {f"tuskbase/_policies/{name}" for name in platform_policies()} <= names


def test_the_installed_package_reads_them_from_itself(installed: Installed):
    probe = (
        "import json, tuskbase, tuskbase.migrate as m, tuskbase.policies as p;"
        "print(json.dumps([tuskbase.__file__, str(m.PLATFORM_SQL), str(p.PLATFORM_POLICIES)]))"
    )
    module, sql_dir, policies_dir = json.loads(checked(installed.run(str(installed.venv / "bin" / "python"), "-c",
                                                                     probe)))
    package = installed.site_packages / "tuskbase"
    assert Path(module) == package / "__init__.py", "tuskbase was imported from somewhere else than the venv"
    assert Path(sql_dir) == package / "_sql" and Path(policies_dir) == package / "_policies"


def test_migrate_applies_every_platform_migration_and_policy(installed: Installed, empty_database: str):
    env = clean_environment(TUSKBASE_DATABASE_URL=empty_database, TUSKBASE_JWT_SECRET=TEST_JWT_SECRET,
                            TUSKBASE_DATA_DIR=str(installed.outside / "data"))
    out = checked(installed.run(str(installed.venv / "bin" / "tuskbase"), "migrate", env=env))
    assert f"[{len(PLATFORM_MIGRATIONS)}/{len(PLATFORM_MIGRATIONS)}] platform: {PLATFORM_MIGRATIONS[-1]}" in out, out
    with psycopg.connect(empty_database) as conn:
        applied = [name for (name,) in conn.execute(
            "select name from tuskbase.schema_migrations where source = 'platform' order by name")]
        stand_in_applied = conn.execute(
            "select relrowsecurity from pg_class where oid = 'tuskbase.schema_migrations'::regclass").fetchone()[0]
    assert applied == PLATFORM_MIGRATIONS
    assert stand_in_applied, "migrate did not apply the platform policies"


def test_policies_lint_finds_the_platform_migrations_and_policies(installed: Installed):
    out = checked(installed.run(str(installed.venv / "bin" / "tuskbase"), "policies", "lint"))
    checked_files = len(PLATFORM_MIGRATIONS) + len(platform_policies())
    assert out.strip().splitlines()[-1] == f"tuskbase: policies lint: {checked_files} files, no problems", out
