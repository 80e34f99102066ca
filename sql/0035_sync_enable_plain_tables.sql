-- Only plain tables may sync: a diff pages through a table by heap position (ctid), which a partitioned
-- table does not have as one sequence, and views have no WAL of their own.
create or replace function sync.enable(target regclass, conflict text default 'lww', served boolean default true)
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
