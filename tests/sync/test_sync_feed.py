"""The feed consumer: slot -> sync.changes in commit order, crash safety, leadership, DDL, TOAST, TRUNCATE."""

from __future__ import annotations

import json
import uuid

import psycopg

from tests.sync.conftest import changes, drain
from tuskbase.sync.feed import PEEK, PUBLICATION, Feed
from tuskbase.sync.pgoutput import Decoder


def title_of(admin, key):
    return admin.execute("select title from public.todos where id = %s", (key["id"],)).fetchone()[0]


def make_list(admin, owner, title="groceries"):
    return admin.execute("insert into public.lists (owner_id, title) values (%s, %s) returning id",
                         (owner, title)).fetchone()[0]


def test_changes_are_persisted_in_commit_order_with_keys_and_rows(feed, admin):
    owner = uuid.uuid4()
    list_id = make_list(admin, owner)
    todo = admin.execute("insert into public.todos (list_id, title, position) values (%s, 'milk', 3) returning id",
                         (list_id,)).fetchone()[0]
    admin.execute("update public.todos set done = true where id = %s", (todo,))
    admin.execute("delete from public.todos where id = %s", (todo,))
    assert drain(feed) == 4
    rows = changes(admin)
    assert [(r[1], r[2]) for r in rows] == [("lists", "I"), ("todos", "I"), ("todos", "U"), ("todos", "D")]
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert rows[1][3] == rows[2][3] == rows[3][3] == {"id": str(todo)}
    assert rows[1][4] is None  # no row images: a pull reads rows under RLS, never from the log
    assert rows[1][5] is None and set(rows[2][5]) == {"done", "updated_at"} and rows[3][5] is None
    state = admin.execute("select seq, changes_total from sync.feed_state").fetchone()
    assert state == (4, 4)


def test_out_of_order_commits_get_sequence_in_commit_order(feed, admin, database):
    owner = uuid.uuid4()
    list_id = make_list(admin, owner)
    with psycopg.connect(database) as first, psycopg.connect(database, autocommit=True) as second:
        first.execute("insert into public.todos (list_id, title) values (%s, 'started first')", (list_id,))
        second.execute("insert into public.todos (list_id, title) values (%s, 'committed first')", (list_id,))
        first.commit()
    drain(feed)
    titles = [title_of(admin, r[3]) for r in changes(admin) if r[1] == "todos"]
    assert titles == ["committed first", "started first"]


def test_crash_between_persist_and_advance_loses_and_duplicates_nothing(feed, admin, database, settings):
    owner = uuid.uuid4()
    list_id = make_list(admin, owner)
    for i in range(5):
        admin.execute("insert into public.todos (list_id, title) values (%s, %s)", (list_id, f"t{i}"))
    feed.flush_wal()
    batch = feed.persist()  # committed to sync.changes ...
    assert batch is not None and batch.changes == 6
    feed.close()  # ... and the process dies before advancing the slot
    admin.execute("insert into public.todos (list_id, title) values (%s, 'after the crash')", (list_id,))

    restarted = Feed(database, settings)
    restarted.connect()
    assert restarted.try_lead()
    try:
        assert drain(restarted) == 1
    finally:
        restarted.close()
    rows = changes(admin)
    assert [r[0] for r in rows] == list(range(1, 8))
    titles = [title_of(admin, r[3]) for r in rows if r[1] == "todos"]
    assert titles == ["t0", "t1", "t2", "t3", "t4", "after the crash"]


def test_crash_before_commit_loses_nothing(feed, admin, database, settings):
    owner = uuid.uuid4()
    make_list(admin, owner)
    # Simulate a crash in the middle of a batch: the transaction is rolled back with the connection.
    conn = feed.conn
    conn.execute("begin")
    conn.execute("insert into sync.changes (seq, tbl, op, xid, committed_at) values (1, 1, 'I', 1, now())")
    feed.close()
    restarted = Feed(database, settings)
    restarted.connect()
    assert restarted.try_lead()
    try:
        assert drain(restarted) == 1
    finally:
        restarted.close()
    assert [r[1] for r in changes(admin)] == ["lists"]


def test_only_one_leader_and_standby_takes_over(feed, admin, database, settings):
    standby = Feed(database, settings)
    standby.connect()
    try:
        assert not standby.try_lead()
        feed.close()  # the leader's connection goes away with it (its backend exits a moment later)
        assert _wait_for(standby.try_lead, timeout=10)
        make_list(admin, uuid.uuid4())
        assert drain(standby) == 1
    finally:
        standby.close()


def test_relation_change_after_ddl(feed, admin):
    list_id = make_list(admin, uuid.uuid4())
    drain(feed)
    admin.execute("alter table public.todos add column note text, add column weight numeric")
    admin.execute("insert into public.todos (list_id, title, note, weight) values (%s, 'x', 'hello', 1.50)",
                  (list_id,))
    todo = admin.execute("select id from public.todos where note = 'hello'").fetchone()[0]
    admin.execute("update public.todos set weight = 2 where id = %s", (todo,))
    drain(feed)
    insert, update = changes(admin)[-2:]
    assert insert[3] == update[3] == {"id": str(todo)}
    assert set(update[5]) == {"weight", "updated_at"}


def test_toasted_value_survives_an_update_of_another_column(feed, admin):
    list_id = make_list(admin, uuid.uuid4())
    admin.execute("alter table public.todos drop constraint todos_title_check")
    admin.execute("alter table public.todos add column body text")
    admin.execute("alter table public.todos alter column body set storage external")
    body = "".join(str(uuid.uuid4()) for _ in range(2000))  # ~72 kB: stored out of line
    todo = admin.execute("insert into public.todos (list_id, title, body) values (%s, 'big', %s) returning id",
                         (list_id, body)).fetchone()[0]
    admin.execute("update public.todos set done = true where id = %s", (todo,))
    feed.flush_wal()
    # The decoder, asked for row images, completes the untouched TOASTed value from the old tuple.
    decoder = Decoder(feed._key_columns, rows=True)
    images = []
    with psycopg.connect(feed.url) as conn:
        for (data,) in conn.execute(PEEK, (feed.slot, None, PUBLICATION)):
            tx = decoder.feed(bytes(data))
            if tx is not None:
                images += [json.loads(c.row) for c in tx.changes if c.op == "U"]
    assert [image["body"] for image in images] == [body]
    drain(feed)
    update = changes(admin)[-1]
    assert update[2] == "U"
    assert set(update[5]) == {"done", "updated_at"}  # the untouched TOASTed column is not "changed"


def test_truncate_and_large_transaction(feed, admin):
    list_id = make_list(admin, uuid.uuid4())
    admin.execute("insert into public.todos (list_id, title) select %s, 'n' || g from generate_series(1, 25000) g",
                  (list_id,))
    admin.execute("truncate public.todos")
    total = drain(feed)
    assert total == 1 + 25000 + 1
    ops = admin.execute("select op, count(*) from sync.changes group by op order by op").fetchall()
    assert ops == [("I", 25001), ("T", 1)]


def test_user_transactions_do_not_notify_and_the_feed_does(feed, admin, database):
    with psycopg.connect(database, autocommit=True) as listener:
        listener.execute("listen tuskbase_sync")
        make_list(admin, uuid.uuid4())
        assert list(listener.notifies(timeout=0.3, stop_after=1)) == []
        drain(feed)
        notes = list(listener.notifies(timeout=2, stop_after=1))
        assert [n.payload for n in notes] == ["1"]


def _feed_process(database, tmp_path, name):
    import os
    import subprocess
    import sys

    from tests.conftest import TEST_JWT_SECRET

    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSKBASE_")}
    env.update({"TUSKBASE_DATABASE_URL": database, "TUSKBASE_JWT_SECRET": TEST_JWT_SECRET,
                "TUSKBASE_DATA_DIR": str(tmp_path / name), "TUSKBASE_SYNC_FEED_STANDBY_MS": "100"})
    return subprocess.Popen([sys.executable, "-m", "tuskbase.cli", "feed"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(predicate, timeout=20.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_processes_leader_killed_under_load_standby_takes_over_exactly_once(database, admin, tmp_path):
    """`tuskbase feed` x2: SIGKILL the leader while writes go on; the standby resumes with no loss or dup."""
    import signal
    import threading

    leader = _feed_process(database, tmp_path, "a")
    standby = None
    try:
        assert _wait_for(lambda: admin.execute(
            "select 1 from pg_replication_slots where database = current_database()").fetchone())
        list_id = make_list(admin, uuid.uuid4())
        assert _wait_for(lambda: admin.execute("select seq from sync.feed_state").fetchone()[0] >= 1)
        standby = _feed_process(database, tmp_path, "b")
        written = []
        stop = threading.Event()

        def writer():
            with psycopg.connect(database, autocommit=True) as conn:
                while not stop.is_set() and len(written) < 3000:
                    with conn.transaction():
                        for _ in range(10):
                            conn.execute("insert into public.todos (list_id, title) values (%s, 'w')", (list_id,))
                    written.append(10)

        thread = threading.Thread(target=writer)
        thread.start()
        assert _wait_for(lambda: admin.execute("select count(*) from sync.changes").fetchone()[0] > 200)
        leader.send_signal(signal.SIGKILL)
        leader.wait(10)
        _wait_for(lambda: len(written) >= 300, timeout=30)
        stop.set()
        thread.join(30)
        total = sum(written)
        admin.execute("select pg_logical_emit_message(false, 'test', '', true)")
        assert _wait_for(lambda: admin.execute(
            "select count(*) from sync.changes where op = 'I' and tbl = 3").fetchone()[0] >= total, timeout=30)
        stats = admin.execute("select count(*), count(distinct key), max(seq) from sync.changes "
                              "where tbl = 3").fetchone()
        assert stats[0] == stats[1] == total
        seqs = admin.execute("select count(*), max(seq) from sync.changes").fetchone()
        assert seqs[0] == seqs[1]  # no gap, no duplicate seq
        standby.send_signal(signal.SIGTERM)
        assert standby.wait(15) == 0
        assert b"Traceback" not in standby.stderr.read()
    finally:
        for process in (leader, standby):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_retention_prunes_old_changes_and_idle_clients(feed, admin):
    list_id = make_list(admin, uuid.uuid4())
    for i in range(3):
        admin.execute("insert into public.todos (list_id, title) values (%s, %s)", (list_id, f"t{i}"))
    drain(feed)
    admin.execute("update sync.changes set committed_at = now() - interval '400 hours' where seq <= 2")
    admin.execute("insert into sync.clients (client_id, user_key, seen_at) values "
                  "('old', 'u', now() - interval '400 hours'), ('recent', 'u', now())")
    assert feed.prune() == (2, 1)
    assert admin.execute("select min(seq), count(*) from sync.changes").fetchone() == (3, 2)
    assert admin.execute("select pruned_seq from sync.feed_state").fetchone()[0] == 2
    assert [r[0] for r in admin.execute("select client_id from sync.clients")] == ["recent"]
    assert feed.prune() == (0, 0)


def test_idle_feed_advances_the_slot_with_a_heartbeat(feed, admin, monkeypatch):
    import tuskbase.sync.feed as feed_module

    admin.execute("create table public.unsynced (id int)")
    for i in range(50):
        admin.execute("insert into public.unsynced values (%s)", (i,))
    before = admin.execute("select confirmed_flush_lsn from pg_replication_slots where slot_name = %s",
                           (feed.slot,)).fetchone()[0]
    drain(feed)  # nothing published: the slot cannot move by itself
    monkeypatch.setattr(feed_module, "HEARTBEAT_SECONDS", 0.0)
    feed._maybe_heartbeat()
    drain(feed)
    after = admin.execute("select confirmed_flush_lsn from pg_replication_slots where slot_name = %s",
                          (feed.slot,)).fetchone()[0]
    assert after > before
    assert admin.execute("select count(*) from sync.changes").fetchone()[0] == 0


def test_enable_refuses_tables_it_cannot_sync(admin):
    import pytest

    admin.execute("create table public.nokey (x int)")
    admin.execute("create table public.parted (id int primary key) partition by range (id)")
    admin.execute("create table public.keyed (id int primary key, note text)")
    for target, message in (("public.nokey", "no primary key"), ("public.parted", "not a plain table")):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
            admin.execute("select sync.enable(%s)", (target,))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="conflict must be"):
        admin.execute("select sync.enable('public.keyed', conflict => 'sometimes')")
    admin.execute("select sync.enable('public.keyed', conflict => 'reject')")
    row = admin.execute("select c.relreplident, t.conflict from sync.tables t join pg_class c on c.oid = t.relid "
                        "where t.relid = 'public.keyed'::regclass").fetchone()
    assert row == ("f", "reject")
    assert admin.execute("select count(*) from pg_publication_tables where pubname = 'tuskbase_sync' "
                         "and tablename = 'keyed'").fetchone()[0] == 1


def test_awkward_keys_and_column_names_survive_the_copy_format(feed, admin):
    admin.execute('create table public.odd (k text primary key, "we""ird" text, "tab\there" int)')
    admin.execute("select sync.enable('public.odd')")
    key = 'tab\there, newline\nthere, back\\slash, quote " and é ✓'
    admin.execute("insert into public.odd values (%s, 'a', 1)", (key,))
    admin.execute('update public.odd set "we""ird" = \'b\', "tab\there" = 2 where k = %s', (key,))
    drain(feed)
    insert, update = changes(admin)[-2:]
    assert insert[3] == update[3] == {"k": key}
    assert set(update[5]) == {'we"ird', "tab\there"}
