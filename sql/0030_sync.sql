-- Sync: the change feed (logical replication -> sync.changes), client view records, push idempotency and
-- conflict rules. Only the feed consumer and the API (switching to service_role for its bookkeeping) touch
-- these tables; no request role may read them directly.
create schema if not exists sync;
grant usage on schema sync to service_role;

-- Every table a client may sync (`served`) or whose changes decide what a client may see (`served` false:
-- tables read by policies of served tables, tracked so a change to them can trigger an exact re-diff).
create table sync.tables (
  id serial primary key,
  relid regclass not null unique,
  served boolean not null default true,
  conflict text not null default 'lww' check (conflict in ('reject', 'lww', 'merge', 'custom')),
  resolver regprocedure,
  enabled_at timestamptz not null default now(),
  check ((conflict = 'custom') = (resolver is not null))
);
comment on table sync.tables is 'Tables in the sync publication, with their push conflict rule.';

-- One publication per database: the feed's slot decodes only these tables.
do $$
begin
  if not exists (select from pg_publication where pubname = 'tuskbase_sync') then
    create publication tuskbase_sync;
  end if;
end
$$;

-- The change log, in commit order, with a sequence the feed consumer assigns (never a Postgres sequence:
-- values taken by transactions that commit out of order would let a cursor skip a commit).
create table sync.changes (
  seq bigint primary key,
  tbl integer not null,
  op "char" not null,            -- I insert, U update, D delete, T truncate (key null)
  key jsonb,                     -- primary key columns as an object: {"id": "..."}
  row jsonb,                     -- the new row image (I, U); TOASTed values unchanged by an update included
  cols text[],                   -- U only: the columns whose value changed
  xid bigint not null,           -- id of the writing transaction (= xmin of the row version it made)
  committed_at timestamptz not null
);
create index changes_tbl_key on sync.changes (tbl, key);

-- The feed's own position, written in the same transaction as the changes it persisted: a consumer that
-- dies after that commit and before advancing the slot skips, on restart, what it already persisted.
create table sync.feed_state (
  singleton boolean primary key default true check (singleton),
  epoch integer not null default 0,         -- bumped when the slot is (re)created: older cursors re-diff
  lsn pg_lsn,                               -- end LSN of the last persisted commit
  seq bigint not null default 0,            -- last seq assigned
  pruned_seq bigint not null default 0,     -- changes up to this seq were removed by retention
  changes_total bigint not null default 0,
  updated_at timestamptz not null default now()
);
insert into sync.feed_state default values;

-- A client (device) and the position of its last pulls; bound to the user that first used it.
create table sync.clients (
  client_id text primary key check (length(client_id) between 1 and 128),
  user_key text not null,                   -- `sub` of the token (or the role for tokens without one)
  pull_no integer not null default 0,       -- latest pull answered (maybe not yet received by the client)
  nonce text,                               -- of pull `pull_no`
  prev_nonce text,                          -- of pull `pull_no - 1`
  epoch integer not null default 0,
  claims_hash text,
  created_at timestamptz not null default now(),
  seen_at timestamptz not null default now()
);

-- Client view record: per client, each row it was sent and the version (xmin) sent. `version` null means
-- the client was told the row is gone. `prev_version` / `pull_no` let the last pull be undone when its
-- answer never reached the client. `pushed` is the version the client's own last push wrote.
create table sync.client_rows (
  client_id text not null references sync.clients on delete cascade,
  tbl integer not null,
  key jsonb not null,
  version bigint,
  pull_no integer not null,
  prev_version bigint,
  pushed bigint,
  primary key (client_id, tbl, key)
);
create index client_rows_pull on sync.client_rows (client_id, pull_no);

-- Pushes already applied (or refused), by client and mutation id: a replay answers the stored result.
create table sync.mutations (
  client_id text not null references sync.clients on delete cascade,
  mutation_id text not null check (length(mutation_id) between 1 and 128),
  status integer not null,
  response jsonb not null,
  created_at timestamptz not null default now(),
  primary key (client_id, mutation_id)
);

grant select, insert, update, delete on sync.clients, sync.client_rows, sync.mutations to service_role;
grant select on sync.tables, sync.changes, sync.feed_state to service_role;

-- Opt a table in: it joins the publication with REPLICA IDENTITY FULL (old rows in the WAL: deletes carry
-- every column, TOASTed values survive updates), and gets its push conflict rule:
--   'reject' | 'lww' | 'merge' | a function name `schema.fn` taking (server jsonb, client jsonb, changed text[])
--   and returning the jsonb row to keep (null refuses the row).
-- Only plain tables may sync: a diff pages through a table by heap position (ctid), which a partitioned
-- table does not have as one sequence, and views have no WAL of their own.
create function sync.enable(target regclass, conflict text default 'lww', served boolean default true)
returns void
language plpgsql
set search_path = ''
as $$
declare
  rule text := conflict;
  fn regprocedure;
begin
  if (select relkind from pg_class where oid = target) <> 'r' then
    raise exception 'sync.enable: % is not a plain table (partitioned tables and views cannot sync)', target
      using errcode = '22023';
  end if;
  if not exists (select from pg_index where indrelid = target and indisprimary) then
    raise exception 'sync.enable: % has no primary key', target using errcode = '22023';
  end if;
  if rule not in ('reject', 'lww', 'merge') then
    fn := to_regprocedure(rule || '(jsonb, jsonb, text[])');
    if fn is null then
      raise exception 'sync.enable: conflict must be reject, lww, merge or a function (jsonb, jsonb, text[]), got %',
        rule using errcode = '22023';
    end if;
    rule := 'custom';
  end if;
  execute format('alter table %s replica identity full', target);
  if not exists (select from pg_publication_rel pr join pg_publication p on p.oid = pr.prpubid
                 where p.pubname = 'tuskbase_sync' and pr.prrelid = target) then
    execute format('alter publication tuskbase_sync add table %s', target);
  end if;
  insert into sync.tables (relid, served, conflict, resolver) values (target, served, rule, fn)
  on conflict (relid) do update set served = excluded.served, conflict = excluded.conflict,
                                    resolver = excluded.resolver;
end
$$;
comment on function sync.enable(regclass, text, boolean) is
  'Opt a table into sync (publication + REPLICA IDENTITY FULL) with its push conflict rule.';

-- Opt a table out: it leaves the publication; its change log entries stay until retention removes them.
create function sync.disable(target regclass) returns void
language plpgsql
set search_path = ''
as $$
begin
  if exists (select from pg_publication_rel pr join pg_publication p on p.oid = pr.prpubid
             where p.pubname = 'tuskbase_sync' and pr.prrelid = target) then
    execute format('alter publication tuskbase_sync drop table %s', target);
  end if;
  delete from sync.tables where relid = target;
end
$$;

revoke execute on function sync.enable(regclass, text, boolean), sync.disable(regclass) from public;
