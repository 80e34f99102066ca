-- WatermelonDB protocol (/sync/v1/watermelon): its `timestamp` / `lastPulledAt` must be a number, while the sync
-- engine's cursor is text and its client is named. Each pull answer gets a row here; its id is the timestamp the
-- client holds, and leads back to the engine's client and cursor. Rows of a client older than the timestamp it
-- last presented are removed (the one before is kept: a client whose answer was lost presents it again).
create table sync.watermelon_pulls (
  id bigint generated always as identity primary key,
  client_id text not null references sync.clients on delete cascade,
  cursor text,
  created_at timestamptz not null default now()
);
create index watermelon_pulls_client on sync.watermelon_pulls (client_id, id);
comment on table sync.watermelon_pulls is 'WatermelonDB timestamps (ids) -> sync engine client and cursor.';

grant select, insert, delete on sync.watermelon_pulls to service_role;
