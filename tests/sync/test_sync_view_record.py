"""The client view record (`sync.client_rows`) keeps a foreign key's guarantees without a per-row foreign key:
rows name existing clients, a deleted client takes its rows along, and a delete racing a pull waits for it."""

from __future__ import annotations

import base64
import json
import threading

import psycopg
import pytest

from tuskbase.sync.wire import Cursor

ADD_ROWS = (
    "insert into sync.client_rows (client_id, tbl, key, version, pull_no) "
    "select %s, 1, jsonb_build_object('id', g)::text, g, 1 from generate_series(1, 3) g"
)


def add_client(admin: psycopg.Connection, client_id: str) -> None:
    admin.execute("insert into sync.clients (client_id, user_key) values (%s, 'u')", (client_id,))


def rows_of(admin: psycopg.Connection, client_id: str) -> int:
    return admin.execute("select count(*) from sync.client_rows where client_id = %s", (client_id,)).fetchone()[0]


def test_rows_must_name_an_existing_client_and_keep_it(admin):
    add_client(admin, "known")
    admin.execute(ADD_ROWS, ("known",))
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="ghost"):
        admin.execute(ADD_ROWS, ("ghost",))
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="cannot be changed"):
        admin.execute("update sync.client_rows set client_id = 'other' where client_id = 'known'")
    admin.execute("update sync.client_rows set version = 7 where client_id = 'known'")  # other columns: fine
    assert rows_of(admin, "known") == 3 and rows_of(admin, "ghost") == 0


def test_deleting_a_client_deletes_its_rows_only(admin):
    for client in ("gone", "kept"):
        add_client(admin, client)
        admin.execute(ADD_ROWS, (client,))
    admin.execute("delete from sync.clients where client_id = 'gone'")
    assert (rows_of(admin, "gone"), rows_of(admin, "kept")) == (0, 3)


def test_a_client_delete_waits_for_a_pull_writing_its_rows_then_removes_them(admin, database):
    add_client(admin, "busy")
    with psycopg.connect(database) as pulling:
        pulling.execute(ADD_ROWS, ("busy",))  # uncommitted: the client row is locked FOR KEY SHARE
        done = threading.Event()

        def prune() -> None:
            with psycopg.connect(database, autocommit=True) as other:
                other.execute("delete from sync.clients where client_id = 'busy'")
            done.set()

        thread = threading.Thread(target=prune)
        thread.start()
        assert not done.wait(0.5), "the delete did not wait for the transaction writing the client's rows"
        pulling.commit()
        thread.join(10)
    assert done.is_set() and rows_of(admin, "busy") == 0


def test_a_version_1_cursor_in_pass_b_restarts_pass_b_of_its_table():
    """Version 1 cursors resumed pass B after a key in jsonb order; keys are text-ordered now."""
    diff = {"u": 9, "q": [2], "ph": "b", "k": '{"id": "b"}', "f": False}
    raw = {"v": 1, "c": "phone", "p": 3, "n": "x", "s": 5, "e": 0, "f": "fp", "d": diff}
    text = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")
    cursor = Cursor.decode(text, "phone")
    assert cursor.diff == {**diff, "k": None} and (cursor.pull_no, cursor.seq) == (3, 5)
    in_pass_a = {**raw, "d": {**diff, "ph": "a", "k": "(4,2)"}}
    text = base64.urlsafe_b64encode(json.dumps(in_pass_a).encode()).decode().rstrip("=")
    assert Cursor.decode(text, "phone").diff["k"] == "(4,2)"  # a heap position: unaffected
    assert Cursor.decode(Cursor.decode(text, "phone").encode(), "phone").diff["k"] == "(4,2)"
