-- Internal bookkeeping of the platform (not exposed over REST).
create table if not exists tuskbase.heartbeats (
  name text primary key,
  beat_at timestamptz not null default now()
);
comment on table tuskbase.heartbeats is 'Liveness marks written by workers; the test broker round trip uses it.';
grant select on tuskbase.heartbeats to service_role;

-- /ready compares the applied migrations with the files on disk.
grant usage on schema tuskbase to authenticator;
grant select on tuskbase.schema_migrations to authenticator;
