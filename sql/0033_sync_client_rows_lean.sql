-- A first pull writes one view-record row per row sent: every index on sync.client_rows is paid 100,000 times
-- for a 100,000-row first sync. Undoing a lost answer (by pull_no) is rare and may scan one client's rows.
drop index if exists sync.client_rows_pull;
