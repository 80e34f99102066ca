"""pgcrypto and uuid-ossp on the embedded Postgres: a Supabase-style migration creates them unchanged, and the
SQL stand-ins Tuskbase installs give the same values as the real extensions (known vectors, Python's hashlib,
hmac and uuid as references)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import shutil
import uuid

import bcrypt
import psycopg
import pytest

from tests.conftest import create_database, drop_database
from tuskbase import extensions, migrate

MIGRATION = """
create extension if not exists "uuid-ossp";
create extension if not exists pgcrypto with schema extensions;
create table public.tokens (
  id uuid primary key default uuid_generate_v4(),
  secret bytea not null default extensions.gen_random_bytes(32),
  fingerprint text generated always as (encode(extensions.digest(secret, 'sha256'), 'hex')) stored
);
"""
ALGORITHMS = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")


@pytest.fixture(scope="module")
def conn(pg_server, tmp_path_factory):
    """A database migrated from nothing (platform + an app whose migration creates both extensions)."""
    app = tmp_path_factory.mktemp("app")
    (app / "migrations").mkdir()
    (app / "migrations" / "0001_extensions.sql").write_text(MIGRATION)
    name = create_database(pg_server, "template0")
    try:
        migrate.migrate(pg_server.dsn(name), app)
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as connection:
            connection.execute("set search_path = public, extensions")
            yield connection
    finally:
        drop_database(pg_server, name)


def value(conn, query: str, *params):
    return conn.execute(query, params).fetchone()[0]


def test_the_migration_applied_and_the_defaults_work(conn):
    found = dict(conn.execute("select extname, extversion from pg_extension "
                              "where extname in ('pgcrypto', 'uuid-ossp')"))
    assert found == {"pgcrypto": "1.3", "uuid-ossp": "1.1"}
    row = conn.execute("insert into public.tokens default values returning id, secret, fingerprint").fetchone()
    assert row[0].version == 4 and len(row[1]) == 32
    assert row[2] == hashlib.sha256(row[1]).hexdigest()


def test_digest_matches_known_vectors_and_hashlib(conn):
    assert value(conn, "select encode(digest('abc', 'sha1'), 'hex')") == "a9993e364706816aba3e25717850c26c9cd0d89d"
    assert value(conn, "select encode(digest('', 'sha1'), 'hex')") == "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    assert value(conn, "select encode(digest('abc', 'SHA256'), 'hex')") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    # Every padding boundary of the 64- and 128-byte blocks, and a multi-block input.
    for length in (0, 1, 55, 56, 57, 63, 64, 65, 111, 112, 119, 120, 127, 128, 129, 1000):
        data = os.urandom(length)
        for algorithm in ALGORITHMS:
            expected = hashlib.new(algorithm, data).digest()
            assert value(conn, "select digest(%s::bytea, %s)", data, algorithm) == expected, (algorithm, length)
    text = "grüße, 東京"
    assert value(conn, "select digest(%s::text, 'sha1')", text) == hashlib.sha1(text.encode()).digest()


def test_hmac_matches_rfc_vectors_and_python(conn):
    # RFC 2202 test 2 (HMAC-SHA1) and RFC 4231 test 1 (HMAC-SHA256).
    assert value(conn, "select encode(hmac('what do ya want for nothing?', 'Jefe', 'sha1'), 'hex')") == (
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
    assert value(conn, "select encode(hmac('Hi There'::bytea, %s::bytea, 'sha256'), 'hex')", b"\x0b" * 20) == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    for key_length in (0, 1, 20, 64, 65, 128, 129, 200):  # keys longer than the block are hashed first
        key, data = os.urandom(key_length), os.urandom(77)
        for algorithm in ALGORITHMS:
            expected = hmac.new(key, data, algorithm).digest()
            assert value(conn, "select hmac(%s::bytea, %s::bytea, %s)", data, key, algorithm) == expected, (
                algorithm, key_length)


def test_bad_algorithms_and_lengths_are_refused_like_pgcrypto(conn):
    with pytest.raises(psycopg.Error) as caught:
        value(conn, "select digest('x', 'sha3')")
    assert caught.value.sqlstate == "39000" and 'Cannot use "sha3": No such hash algorithm' in str(caught.value)
    for length in (0, 1025):
        with pytest.raises(psycopg.Error) as caught:
            value(conn, "select gen_random_bytes(%s)", length)
        assert caught.value.sqlstate == "22023"


def test_gen_random_bytes_and_gen_random_uuid(conn):
    samples = [value(conn, "select gen_random_bytes(%s)", n) for n in (1, 14, 15, 16, 1024)]
    assert [len(s) for s in samples] == [1, 14, 15, 16, 1024]
    many = {bytes(value(conn, "select gen_random_bytes(16)")) for _ in range(50)}
    assert len(many) == 50
    # Every bit position varies (a stand-in that copied UUID version or variant bits would fix some).
    ored = anded = None
    for sample in many:
        number = int.from_bytes(sample, "big")
        ored = number if ored is None else ored | number
        anded = number if anded is None else anded & number
    assert ored == (1 << 128) - 1 and anded == 0
    assert value(conn, "select extensions.gen_random_uuid()").version == 4


def test_uuid_ossp_functions_match_python(conn):
    assert value(conn, "select uuid_nil()") == uuid.UUID(int=0)
    assert value(conn, "select uuid_ns_dns()") == uuid.NAMESPACE_DNS
    assert value(conn, "select uuid_ns_url()") == uuid.NAMESPACE_URL
    assert value(conn, "select uuid_ns_oid()") == uuid.NAMESPACE_OID
    assert value(conn, "select uuid_ns_x500()") == uuid.NAMESPACE_X500
    for name in ("python.org", "", "grüße", "x" * 300):
        assert value(conn, "select uuid_generate_v3(uuid_ns_dns(), %s)", name) == uuid.uuid3(uuid.NAMESPACE_DNS, name)
        assert value(conn, "select uuid_generate_v5(uuid_ns_url(), %s)", name) == uuid.uuid5(uuid.NAMESPACE_URL, name)
    assert value(conn, "select uuid_generate_v5(uuid_ns_dns(), 'python.org')") == uuid.UUID(
        "886313e1-3b8a-5372-9b90-0c9aee199e5d")
    v4 = {value(conn, "select uuid_generate_v4()") for _ in range(20)}
    assert len(v4) == 20 and {u.version for u in v4} == {4}
    for function in ("uuid_generate_v1", "uuid_generate_v1mc"):
        generated = value(conn, f"select {function}()")
        assert generated.version == 1 and generated.variant == uuid.RFC_4122
        assert generated.node & (1 << 40)  # multicast bit: a random node, not a MAC
        # 100 ns ticks since 1582-10-15 (RFC 4122): within a minute of now.
        moment = dt.datetime(1582, 10, 15, tzinfo=dt.UTC) + dt.timedelta(microseconds=generated.time // 10)
        assert abs((moment - dt.datetime.now(dt.UTC)).total_seconds()) < 60


def test_the_embedded_server_lists_both_and_says_what_is_missing(conn):
    available = dict(conn.execute("select name, comment from pg_available_extensions "
                                  "where name in ('pgcrypto', 'uuid-ossp')"))
    assert set(available) == {"pgcrypto", "uuid-ossp"}
    assert "Tuskbase" in available["pgcrypto"]


needs_compiler = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                                    reason="crypt()/gen_salt() are built with the machine's C compiler")


@needs_compiler
def test_crypt_with_a_bcrypt_salt_gives_what_bcrypt_gives_and_auth_verifies(conn):
    salt = value(conn, "select gen_salt('bf')")
    assert salt.startswith("$2a$06$") and len(salt) == 29  # pgcrypto's default cost
    hashed = value(conn, "select crypt('correct horse', %s)", salt)
    assert bcrypt.checkpw(b"correct horse", hashed.encode())  # the library auth verifies passwords with
    assert not bcrypt.checkpw(b"wrong horse", hashed.encode())
    assert value(conn, "select crypt('correct horse', %s) = %s", hashed, hashed)  # the usual check in SQL
    fixed = bcrypt.gensalt(rounds=4, prefix=b"2a")
    assert value(conn, "select crypt('pw', %s)", fixed.decode()) == bcrypt.hashpw(b"pw", fixed).decode()
    assert value(conn, "select gen_salt('bf', 4)").startswith("$2a$04$")


@needs_compiler
def test_crypt_with_the_other_salts_and_bad_input_as_pgcrypto_answers(conn):
    for kind, prefix in (("md5", "$1$"), ("xdes", "_"), ("sha256crypt", "$5$"), ("sha512crypt", "$6$")):
        salt = value(conn, "select gen_salt(%s)", kind)
        assert salt.startswith(prefix), kind
        hashed = value(conn, "select crypt('pw', %s)", salt)
        assert value(conn, "select crypt('pw', %s) = %s and crypt('other', %s) <> %s", hashed, hashed, hashed,
                     hashed), kind
    for query, message in (("select gen_salt('rot13')", "Unknown salt algorithm"),
                           ("select gen_salt('bf', 3)", "Incorrect number of rounds"),
                           ("select gen_salt('bf', 32)", "Incorrect number of rounds"),
                           ("select crypt('pw', '$9$nonsense')", "crypt(3) returned NULL")):
        with pytest.raises(psycopg.Error, match=re.escape(message)):
            conn.execute(query)
    assert value(conn, "select crypt(null, gen_salt('bf')) is null")  # strict, as pgcrypto's


def test_without_a_compiler_pgcrypto_has_no_crypt(tmp_path, monkeypatch):
    monkeypatch.setattr(extensions.shutil, "which", lambda _name: None)
    (tmp_path / "share" / "extension").mkdir(parents=True)
    (tmp_path / "lib").mkdir()
    lines: list[str] = []
    extensions.install(tmp_path / "share" / "extension", log=lines.append)
    script = (tmp_path / "share" / "extension" / "pgcrypto--1.3.sql").read_text()
    assert "FUNCTION crypt" not in script and "gen_random_bytes" in script
    assert any("without crypt()/gen_salt()" in line for line in lines)


def test_install_keeps_a_real_extension_and_fills_a_missing_one(tmp_path):
    (tmp_path / "pgcrypto.control").write_text("comment = 'cryptographic functions'\nmodule_pathname = 'x'\n")
    written = extensions.install(tmp_path, log=lambda _line: None)
    assert (tmp_path / "pgcrypto.control").read_text().startswith("comment = 'cryptographic functions'")
    assert written == ["uuid-ossp.control", "uuid-ossp--1.1.sql"]
    assert extensions.install(tmp_path, log=lambda _line: None) == []  # already there: nothing to copy
