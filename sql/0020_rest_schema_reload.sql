-- The REST schema cache (and every other introspection cache) reloads when DDL runs: an event trigger
-- NOTIFYs `tuskbase_schema`, which each API process LISTENs to. The notification is sent at commit, so a
-- rolled-back migration reloads nothing.
create or replace function tuskbase.notify_schema_change() returns event_trigger
language plpgsql
set search_path = ''
as $$
begin
  perform pg_notify('tuskbase_schema', 'reload');
end
$$;

drop event trigger if exists tuskbase_schema_ddl;
create event trigger tuskbase_schema_ddl on ddl_command_end
  execute function tuskbase.notify_schema_change();

drop event trigger if exists tuskbase_schema_drop;
create event trigger tuskbase_schema_drop on sql_drop
  execute function tuskbase.notify_schema_change();

-- Persisted queries: a query string registered once (by the service role) and called by name or hash,
-- so that a mobile client sends a few bytes instead of a long URL. The API only reads this table.
create table if not exists tuskbase.persisted_queries (
  name text primary key check (name ~ '^[A-Za-z0-9_.-]{1,100}$'),
  hash text not null unique,
  method text not null default 'GET' check (method in ('GET', 'HEAD')),
  path text not null check (path ~ '^/'),
  query text not null default '',
  created_at timestamptz not null default now()
);
comment on table tuskbase.persisted_queries is
  'REST queries registered by name (service role): GET /rest/v1/persisted/<name or sha256> runs path?query as the caller.';
grant select, insert, update, delete on tuskbase.persisted_queries to authenticator;
