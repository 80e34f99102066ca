"""The feed consumer: logical slot -> `sync.changes` in commit order -> NOTIFY.

One batch, in one transaction of the leader's connection:

1. peek at most `sync_feed_batch` changes (whole transactions; the size grows while the slot has a backlog)
   from the slot, with pgoutput, through a server-side cursor on a second connection, so that a huge
   transaction is read in chunks and decoding overlaps the server ingesting the COPY;
2. drop the transactions whose commit lies before `sync.feed_state.lsn` (persisted by a run that died
   before advancing the slot);
3. COPY the changes into `sync.changes` with consecutive `seq` values, in commit order: table, operation,
   primary key, and for updates the columns whose value changed. No row images: a pull always reads rows under
   the user's RLS, and a merge needs only which columns changed;
4. store the end LSN of the last commit and the last seq in `sync.feed_state`, `pg_notify` the last seq;
5. COMMIT (synchronous_commit=on), then `pg_replication_slot_advance` to that LSN.

A crash before 5 commits leaves nothing; a crash between COMMIT and the advance is repaired by step 2 on the
next run: no change is lost and none is written twice. User transactions never NOTIFY; only this does.

Leadership: the leader holds a session advisory lock on its connection; standbys retry every
`sync_feed_standby_ms`, so when a leader dies (its connection closes) one takes over within that period.

Idle: the leader compares `pg_current_wal_insert_lsn()` every `sync_feed_poll_ms` and peeks only when the WAL
moved (flushing it first when the server runs with synchronous_commit=off). pgoutput sends nothing for
transactions that touch no published table, so a slot could sit still while the WAL grows; after
`HEARTBEAT_SECONDS` of such idling the leader emits a logical message to itself and advances past it. While
busy, a batch marks itself at most every `MARK_SECONDS` (see `Feed._mark`) so that the slot moves past the
feed's own writes and its restart point keeps up.

Why synchronous psycopg: one loop, no concurrency inside the consumer beyond the COPY writer thread; psycopg's
COPY is the fastest path to persist a batch, and a blocking loop is the simplest thing to make crash-safe.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from dataclasses import dataclass

import psycopg
from psycopg.copy import QueuedLibpqWriter

from tuskbase import db
from tuskbase.config import Settings
from tuskbase.sync.pgoutput import Decoder, lsn_int, lsn_text

log = logging.getLogger("tuskbase.sync.feed")

PUBLICATION = "tuskbase_sync"
CHANNEL = "tuskbase_sync"
LEADER_LOCK = 0x73796E63  # "sync"
HEARTBEAT_SECONDS = 10.0
MAX_BATCH_GROWTH = 64  # a backlog is read in batches of up to 64 x sync_feed_batch changes
MARK_SECONDS = 0.5  # at most this often a batch marks itself (see `_mark`): one more peek and advance each time
FETCH_CHUNK = 5000

TRY_LEAD = "select pg_try_advisory_lock(%s)"
SLOT_EXISTS = (
    "select confirmed_flush_lsn::text from pg_replication_slots where slot_name = %s and database = current_database()"
)
CREATE_SLOT = "select lsn::text from pg_create_logical_replication_slot(%s, 'pgoutput')"
NEW_EPOCH = "update sync.feed_state set epoch = epoch + 1, lsn = %s::pg_lsn, updated_at = now()"
STATE = "select coalesce(lsn, '0/0')::text, seq, epoch from sync.feed_state"
MARK = "select pg_logical_emit_message(true, 'tuskbase_sync_mark', '')"
SNAPSHOT = "select pg_log_standby_snapshot()"
PEEK = (
    "select data from pg_logical_slot_peek_binary_changes(%s, NULL, %s, 'proto_version', '1', "
    "'publication_names', %s, 'messages', 'true')"
)
COPY_CHANGES = "copy sync.changes (seq, tbl, op, key, row, cols, xid, committed_at) from stdin"
SAVE_STATE = (
    "update sync.feed_state set lsn = %s::pg_lsn, seq = %s, changes_total = changes_total + %s, updated_at = now()"
)
NOTIFY = "select pg_notify(%s, %s)"
ADVANCE = "select pg_replication_slot_advance(%s, %s::pg_lsn)"
WAL_POSITION = "select pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text"
# Logical decoding reads only flushed WAL: under synchronous_commit=off a commit could wait for the WAL writer
# (up to 3 x wal_writer_delay). A flushed non-transactional message (PG >= 17) flushes everything before it.
FLUSH_WAL = "select pg_logical_emit_message(false, 'tuskbase_sync_flush', '', true)"
HEARTBEAT = "select pg_logical_emit_message(true, 'tuskbase_sync_heartbeat', '')"
TABLES = "select relid::oid, id, served from sync.tables"
PRUNE_EVERY_SECONDS = 60.0
PRUNE_CHANGES = """
with cut as (
  select max(seq) as seq from sync.changes where committed_at < now() - make_interval(hours => %(hours)s)
), gone as (
  delete from sync.changes where seq <= (select seq from cut) returning 1
)
update sync.feed_state set pruned_seq = greatest(pruned_seq, coalesce((select seq from cut), 0))
returning (select count(*) from gone)
"""
PRUNE_CLIENTS = "delete from sync.clients where seen_at < now() - make_interval(hours => %(hours)s)"
PRUNE_MUTATIONS = "delete from sync.mutations where created_at < now() - make_interval(hours => %(hours)s)"
PRIMARY_KEY = """
select array_agg(a.attname::text order by k.ord)
from pg_index i
cross join unnest(i.indkey) with ordinality as k(attnum, ord)
join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
where i.indrelid = %s and i.indisprimary
"""


_COPY_SPECIAL = re.compile(r"[\\\n\r\t]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _copy_text(value: str | None) -> str:
    """A value in COPY's text format (backslash escapes; \\N is NULL)."""
    if value is None:
        return "\\N"
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


def _copy_array(names: list[str] | None) -> str:
    if names is None:
        return "\\N"
    quoted = ",".join('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names)
    return _copy_text("{" + quoted + "}")


def slot_name(settings: Settings, database: str) -> str:
    if settings.sync_slot:
        return settings.sync_slot
    return ("tuskbase_sync_" + re.sub(r"[^a-z0-9_]", "_", database.lower()))[:63]


@dataclass
class Batch:
    """What one persisted batch did: how many changes, up to which seq and LSN."""

    changes: int
    seq: int
    lsn: str
    transactions: int


class Feed:
    """The consumer of one database's slot. `step()` runs one batch; `run()` loops until `stop` is set."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.conn: psycopg.Connection | None = None  # the leader lock, persisting, advancing
        self.reader: psycopg.Connection | None = None  # peeking at the slot, catalog look-ups
        self.slot = ""
        self.leader = False
        self.tables: dict[int, int] = {}
        self.last_wal = ""
        self.idle_since = time.monotonic()
        self.pruned_at = 0.0
        self.snapshots = True
        self.batch_size = settings.sync_feed_batch
        self.marked_at = 0.0
        self.keys = {}
        self.decoder = Decoder(self._key_columns)

    # -- connection and leadership ---------------------------------------------------------------------

    def connect(self) -> None:
        self.conn = psycopg.connect(self.url, autocommit=True, application_name="tuskbase-feed")
        self.reader = psycopg.connect(self.url, autocommit=True, application_name="tuskbase-feed-reader")
        # The slot is advanced only after the batch's commit; that commit must be durable first even where the
        # server runs with synchronous_commit=off (else a server crash could keep the advance and lose the batch).
        self.conn.execute("set synchronous_commit = on")
        database = self.conn.info.dbname
        self.slot = slot_name(self.settings, database)
        self.leader = False

    def close(self) -> None:
        for conn in (self.conn, self.reader):
            if conn is not None:
                conn.close()
        self.conn = self.reader = None
        self.leader = False

    def try_lead(self) -> bool:
        """Take the leader lock if free; the first time, make sure the slot exists and catch it up."""
        assert self.conn is not None
        if not self.conn.execute(TRY_LEAD, (LEADER_LOCK,)).fetchone()[0]:
            return False
        self.leader = True
        self._ensure_slot()
        self.keys: dict[int, list[str] | None] = {}
        self.decoder = Decoder(self._key_columns)
        self._load_tables()
        return True

    def _ensure_slot(self) -> None:
        assert self.conn is not None
        row = self.conn.execute(SLOT_EXISTS, (self.slot,)).fetchone()
        if row is None:
            lsn = self.conn.execute(CREATE_SLOT, (self.slot,)).fetchone()[0]
            # Changes between the old slot (if any) and this one were never seen: older cursors must re-diff.
            self.conn.execute(NEW_EPOCH, (lsn,))
            log.info("created logical replication slot %s at %s", self.slot, lsn)
            return
        state_lsn = self.conn.execute("select lsn::text from sync.feed_state").fetchone()[0]
        # A previous leader may have died between persisting and advancing: advance now.
        if state_lsn and row[0] and lsn_int(state_lsn) > lsn_int(row[0]):
            self.conn.execute(ADVANCE, (self.slot, state_lsn))

    def _load_tables(self) -> None:
        assert self.reader is not None
        self.tables = {relid: tbl for relid, tbl, _served in self.reader.execute(TABLES)}

    def _key_columns(self, relid: int) -> list[str] | None:
        """Primary key of a relation, asked once per leadership (every peek re-sends Relation messages)."""
        if relid not in self.keys:
            assert self.reader is not None
            self.keys[relid] = self.reader.execute(PRIMARY_KEY, (relid,)).fetchone()[0]
        return self.keys[relid]

    # -- one batch -------------------------------------------------------------------------------------

    def persist(self) -> Batch | None:
        """Steps 1-4 and COMMIT. Returns None when the slot had nothing new.

        The slot is read on a second connection so that decoding overlaps with the server ingesting the COPY
        (rows are queued to a writer thread): peek, decode and persist run as one stream.
        """
        conn, reader = self.conn, self.reader
        assert conn is not None and reader is not None and self.leader
        with conn.transaction():
            state_lsn, seq, _epoch = conn.execute(STATE).fetchone()
            self.decoder.skip_before = lsn_int(state_lsn)
            first_seq = seq
            end_lsn = 0
            transactions = 0
            with reader.transaction(), reader.cursor(name="tuskbase_feed_peek", binary=True) as peek, \
                    conn.cursor() as cursor:
                peek.execute(PEEK, (self.slot, self.batch_size, PUBLICATION))
                chunk = peek.fetchmany(FETCH_CHUNK)
                if not chunk:
                    return None
                # A writer thread pays off when the batch is large (decoding overlaps the server's COPY).
                writer = QueuedLibpqWriter(cursor) if len(chunk) >= FETCH_CHUNK else None
                with cursor.copy(COPY_CHANGES, writer=writer) as copy:
                    while chunk:
                        lines: list[str] = []
                        for (data,) in chunk:
                            tx = self.decoder.feed(data)
                            if tx is None:
                                continue
                            transactions += 1
                            end_lsn = tx.end_lsn
                            # COPY text rows, formatted here: the per-row type adaptation of write_row() was a
                            # third of the consumer's Python time.
                            tail = f"\t{tx.xid}\t{tx.commit_time.isoformat()}\n"
                            for change in tx.changes:
                                tbl = self.tables.get(change.relid)
                                if tbl is None:
                                    self._load_tables()
                                    tbl = self.tables.get(change.relid)
                                    if tbl is None:
                                        continue  # in the publication but not opted in through sync.enable
                                seq += 1
                                lines.append(f"{seq}\t{tbl}\t{change.op}\t{_copy_text(change.key)}\t"
                                             f"{_copy_text(change.row)}\t{_copy_array(change.cols)}{tail}")
                        if lines:
                            copy.write("".join(lines))
                        chunk = peek.fetchmany(FETCH_CHUNK)
            if not end_lsn:
                return None
            lsn = lsn_text(end_lsn)
            if seq > first_seq:
                conn.execute(SAVE_STATE, (lsn, seq, seq - first_seq))
                conn.execute(NOTIFY, (CHANNEL, str(seq)))
                if time.monotonic() - self.marked_at >= MARK_SECONDS:
                    self._mark()
            # A batch without changes writes nothing (its WAL would be one more thing to decode): the slot
            # simply advances past it; a restart would find nothing there either.
        return Batch(seq - first_seq, seq, lsn, transactions)

    def _mark(self) -> None:
        """Let the slot move past the feed's own writes and its restart point keep up.

        The feed's inserts into sync.changes are WAL the slot must read through: a transactional message in the
        same transaction makes that transaction visible to the next peek, so the slot advances past it. A
        running-xacts record (`pg_log_standby_snapshot`, PG >= 16, superuser) lets the slot's restart_lsn follow;
        without it the server logs one every 15 s and each peek re-reads up to that much WAL.
        """
        assert self.conn is not None
        self.conn.execute(MARK)
        self._snapshot()
        self.marked_at = time.monotonic()

    def _snapshot(self) -> None:
        assert self.conn is not None
        if self.snapshots:
            try:
                with self.conn.transaction():
                    self.conn.execute(SNAPSHOT)
            except psycopg.Error as error:
                log.info("pg_log_standby_snapshot unavailable (%s); the slot's restart point moves every 15 s",
                         error.diag.message_primary or error)
                self.snapshots = False

    def _adapt(self, batch: Batch | None) -> None:
        """Grow the batch while the slot has a backlog, back to `sync_feed_batch` when it is caught up.

        Every peek decodes from the slot's restart point, which only moves past a running-xacts record: in a
        backlog written faster than those are logged, many small peeks would decode the same WAL over and over.
        """
        base = self.settings.sync_feed_batch
        if batch is not None and batch.changes >= self.batch_size:
            self.batch_size = min(self.batch_size * 4, base * MAX_BATCH_GROWTH)
        else:
            self.batch_size = base

    def advance(self, batch: Batch) -> None:
        """Step 5: the slot forgets what is now safely in `sync.changes`."""
        assert self.conn is not None
        self.conn.execute(ADVANCE, (self.slot, batch.lsn))

    def step(self) -> Batch | None:
        batch = self.persist()
        if batch is not None:
            self.advance(batch)
        self._adapt(batch)
        return batch

    def prune(self) -> tuple[int, int]:
        """Retention: drop changes and idle clients older than `sync_retention_hours`; a cursor that needed the
        dropped changes is answered `reset` (pull.py compares it with `pruned_seq`)."""
        assert self.conn is not None
        hours = {"hours": self.settings.sync_retention_hours}
        with self.conn.transaction():
            changes = self.conn.execute(PRUNE_CHANGES, hours).fetchone()[0]
            clients = self.conn.execute(PRUNE_CLIENTS, hours).rowcount
            self.conn.execute(PRUNE_MUTATIONS, hours)
        self.pruned_at = time.monotonic()
        if changes or clients:
            log.info("retention: removed %d changes and %d idle clients", changes, clients)
        return changes, clients

    def wal_moved(self) -> bool:
        """True when the WAL moved since the last look (flushing it if needed, so that decoding sees it)."""
        assert self.conn is not None
        insert, flush = self.conn.execute(WAL_POSITION).fetchone()
        if insert == self.last_wal:
            return False
        if lsn_int(flush) < lsn_int(insert):
            self.flush_wal()
            flush = self.conn.execute(WAL_POSITION).fetchone()[1]
        # Only flushed WAL counts as seen: decoding cannot read past the flush point yet, so a commit that
        # lands after the flush must still count as movement at the next look (else it waits for a heartbeat).
        self.last_wal = insert if lsn_int(flush) >= lsn_int(insert) else flush
        return True

    def flush_wal(self) -> None:
        assert self.conn is not None
        if self.conn.info.server_version >= 170000:
            self.conn.execute(FLUSH_WAL)

    # -- the loop --------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> int:
        poll = self.settings.sync_feed_poll_ms / 1000
        standby = self.settings.sync_feed_standby_ms / 1000
        announced_standby = False
        while not stop.is_set():
            try:
                if self.conn is None or self.conn.closed or self.reader is None or self.reader.closed:
                    self.connect()
                if not self.leader:
                    if not self.try_lead():
                        if not announced_standby:
                            log.info("another feed consumer leads on this database; standing by")
                            announced_standby = True
                        stop.wait(standby)
                        continue
                    log.info("feed consumer is the leader (slot %s)", self.slot)
                    announced_standby = False
                    self.last_wal = ""
                if time.monotonic() - self.pruned_at > PRUNE_EVERY_SECONDS:
                    self.prune()
                if not self.wal_moved():
                    stop.wait(poll)
                    continue
                batch = self.step()
                if batch is None or batch.changes == 0:
                    self._maybe_heartbeat()
                else:
                    self.idle_since = time.monotonic()
                    self.last_wal = ""  # more may be waiting: peek again at once
            except psycopg.OperationalError as error:
                log.warning("feed consumer lost its database connection: %s; retrying", error)
                self.close()
                stop.wait(1.0)
        self.close()
        return 0

    def _maybe_heartbeat(self) -> None:
        if time.monotonic() - self.idle_since < HEARTBEAT_SECONDS:
            return
        assert self.conn is not None
        # The slot only moves when a published change is read; a message to ourselves lets it move.
        self.conn.execute(HEARTBEAT)
        self._snapshot()
        self.idle_since = time.monotonic()


def main(settings: Settings) -> int:
    """`tuskbase feed`: run until SIGTERM / SIGINT."""
    stop = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    feed = Feed(db.admin_url(settings), settings)
    log.info("feed consumer starting")
    status = feed.run(stop)
    log.info("feed consumer stopped")
    return status
