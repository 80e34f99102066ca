-- The change log is written by one consumer at the feed's full rate: keep a single cheap secondary index.
-- Merge conflicts look a row image up by the id of the transaction that wrote the version a client holds;
-- (tbl, key) on jsonb cost the feed a third of its throughput.
drop index if exists sync.changes_tbl_key;
create index changes_xid on sync.changes (xid);
