comment on table sync.changes is
  'Change log in commit order (seq assigned by the feed consumer): table, operation, primary key, changed columns.';
comment on column sync.changes.row is
  'Row image; the feed leaves it null (pulls read rows under RLS, merges use cols). Kept for decoders asked for rows.';
comment on column sync.changes.cols is 'Updates: the columns whose value changed (an untouched TOASTed value is not).';
comment on column sync.changes.xid is 'Top-level id of the writing transaction (= xmin of rows it wrote outside savepoints).';
