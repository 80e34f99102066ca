-- sync.enable warns about a served table whose primary key has more than one column: /sync/v1/pull serves it (a
-- deleted row is told as its key object), but a WatermelonDB record has one string `id`, so /sync/v1/watermelon
-- leaves the table out. Without a word that looked like a table that syncs and never arrives. The body is
-- 0030's, plus the warning; `tuskbase migrate` prints warnings raised while migrating.
create or replace function sync.enable(target regclass, conflict text default 'lww', served boolean default true)
returns void
language plpgsql
set search_path = ''
as $$
declare
  rule text := conflict;
  fn regprocedure;
  key_columns text[];
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
  select array_agg(a.attname::text order by k.ord) into key_columns
  from pg_index i cross join unnest(i.indkey) with ordinality k(attnum, ord)
  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
  where i.indrelid = target and i.indisprimary;
  if served and cardinality(key_columns) > 1 then
    raise warning 'sync.enable: % has a primary key of % columns (%): WatermelonDB cannot sync it (its records have one string id), so /sync/v1/watermelon leaves it out; /sync/v1/pull and /sync/v1/push serve it',
      target, cardinality(key_columns), array_to_string(key_columns, ', ')
      using hint = 'For WatermelonDB, give the table a one-column primary key (a surrogate id) and keep the pair '
                   'unique; see "Composite keys" in the README. A table only policies read: served => false.';
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
