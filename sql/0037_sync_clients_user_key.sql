-- The live channel looks up the clients of the users connected to it (`where user_key = any(...)`) once per
-- persisted batch; without this index that is a scan of every client that ever synced.
create index if not exists sync_clients_user_key on sync.clients (user_key);
