"""The image: Python 3.11 slim, the project installed regularly (its migrations and policies inside the package),
a non-root user, and a build context that carries what the image needs and none of the local state (secrets, venv,
data)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

from tests.packaging.support import ROOT, dockerfile_instructions, is_cli_command

INSTRUCTIONS = dockerfile_instructions()


def instructions(keyword: str) -> list[str]:
    return [args for kind, args in INSTRUCTIONS if kind == keyword]


def image_user() -> tuple[int, int]:
    user = instructions("USER")[-1]
    match = re.fullmatch(r"(\d+):(\d+)", user)
    assert match, f"USER must be numeric uid:gid so Kubernetes can check runAsNonRoot, got {user!r}"
    return int(match[1]), int(match[2])


def build_context() -> set[str]:
    """The files `docker build .` sends, as docker-py computes them from .dockerignore."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    return {path for path in exclude_paths(str(ROOT), patterns) if (ROOT / path).is_file()}


def test_the_base_image_is_python_311_slim():
    bases = instructions("FROM")
    assert bases, "no FROM"
    assert re.fullmatch(r"python:3\.11-slim(-[a-z]+)?", bases[-1].split()[0]), bases[-1]


def test_the_image_runs_as_the_non_root_user_it_creates():
    uid, gid = image_user()
    assert uid != 0 and gid != 0
    run = " ".join(instructions("RUN"))
    assert f"--uid {uid}" in run and f"--gid {gid}" in run, "the USER is not created by the image"
    # The user's data folder is the one place it writes, and the image points TUSKBASE_DATA_DIR at it.
    env = " ".join(instructions("ENV"))
    data_dir = re.search(r"TUSKBASE_DATA_DIR=(\S+)", env)[1]
    assert re.search(rf"install -d -o {uid} -g {gid} .*{re.escape(data_dir)}", run), "data dir not owned by the user"


def test_home_is_the_users_own_folder():
    """asyncpg stats ~/.postgresql/postgresql.key on every connect: under an unreadable HOME (/root, when the
    runtime does not derive HOME from the uid) every connection fails with PermissionError. Found by running the
    image's processes in a chroot (build_in_chroot.py)."""
    env = " ".join(instructions("ENV"))
    assert re.search(r"\bHOME=(\S+)", env)[1] == re.search(r"TUSKBASE_DATA_DIR=(\S+)", env)[1]


def test_the_entrypoint_is_the_tuskbase_command_and_the_default_is_the_api():
    entrypoint = json.loads(instructions("ENTRYPOINT")[-1])
    cmd = json.loads(instructions("CMD")[-1])
    assert entrypoint[-1] == "tuskbase", entrypoint
    assert entrypoint[0] == "tini", "PID 1 must forward SIGTERM and reap the server's worker processes"
    assert cmd == ["serve"] and is_cli_command(cmd)
    # The API must listen beyond loopback inside a container.
    assert "TUSKBASE_HOST=0.0.0.0" in " ".join(instructions("ENV"))


def test_the_dependency_layer_installs_exactly_the_projects_dependencies():
    """Run the very command of the RUN step against pyproject.toml: it must list the runtime dependencies."""
    run = next(r for r in instructions("RUN") if "tomllib" in r)
    program = shlex.split(run.split("python -c", 1)[1])[0]
    printed = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True)
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert printed.stdout.split("\n")[:-1] == expected
    assert any("pip install -r /tmp/requirements.txt" in r for r in instructions("RUN"))


def test_the_project_is_installed_regularly_and_runs_without_its_sources():
    """`pip install .` puts the package in site-packages with sql/ and policies/ as package data (an install like it
    migrates in test_wheel_install.py). The copied sources are deleted right after, so nothing at run time can lean
    on them, and `tuskbase policies lint`, run outside them, fails the build if the package lacks its migrations."""
    run = next((r for r in instructions("RUN") if re.search(r"pip install --no-deps \.(\s|$)", r)), None)
    assert run is not None, "project not installed with `pip install --no-deps .`"
    steps = [step.strip() for step in run.split("&&")]
    removed = next(step for step in steps if step.startswith("rm -rf")).split()[2:]
    assert {"platform", "workers", "sql", "policies", "setup.py"} <= set(removed), removed
    assert steps.index("tuskbase policies lint") > steps.index("cd /")


def test_every_copy_source_is_in_the_build_context():
    context = build_context()
    for args in instructions("COPY"):
        *sources, _destination = args.split()
        for source in sources:
            prefix = "" if source in (".", "./") else source.rstrip("/") + "/"
            assert any(path == source or path.startswith(prefix) for path in context), (
                f"COPY {source}: excluded by .dockerignore"
            )


def test_the_build_context_holds_the_project_and_no_local_state():
    context = build_context()
    tracked = subprocess.run(["git", "ls-files", "platform", "workers", "sql", "policies", "examples"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    missing = sorted(set(tracked) - context)
    assert not missing, f"files the image needs are left out of the build context: {missing[:10]}"
    # setup.py lists the packages; README.md is pyproject's readme, read by the install.
    assert {"pyproject.toml", "setup.py", "README.md"} <= context
    for path in context:
        top = path.split("/")[0]
        assert top not in {".venv", ".git", ".tuskbase", "tests", "bench", "node_modules", "charts"}, path
        assert not path.startswith(".env") and "__pycache__" not in path, path


@pytest.mark.parametrize("path", [".env", ".tuskbase/jwt_secret", ".venv/bin/python"])
def test_secrets_and_local_state_never_reach_the_context(tmp_path: Path, path: str):
    """Even when present, a local .env or generated key is not sent to the Docker daemon."""
    shutil.copy2(ROOT / ".dockerignore", tmp_path / ".dockerignore")
    (tmp_path / "platform").mkdir()
    (tmp_path / "platform" / "x.py").write_text("")
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text("secret")
    patterns = [line.strip() for line in (tmp_path / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    context = exclude_paths(str(tmp_path), patterns)
    assert "platform/x.py" in context and path not in context
