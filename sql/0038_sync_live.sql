-- Live channel (/sync/v1/live): which connected users may see at least one of a batch's changed rows.
--
-- The API's hub calls this once per request role with the claims of its connected users and, per synced table,
-- the keys of the rows inserted or updated in the batch. For each user it sets the claims and asks, under
-- that user's RLS, whether any of those keys is visible. It answers the 1-based positions of the users that
-- see something; it never returns row data. One round trip for many users: a poke's latency should not grow
-- with the round trips of every connected user.
--
-- Not SECURITY DEFINER on purpose: it switches to `request_role` with set_config, which Postgres allows only
-- to a member of that role (the API's `authenticator` is), and switches back to the session role at the end.
create function sync.live_audience(request_role text, claims text[], tables regclass[], keys jsonb[])
returns integer[]
language plpgsql
set search_path = ''
as $$
declare
  checks text[] := '{}';
  t_key text;
  k_key text;
  prepared text;
  seen boolean;
  audience integer[] := '{}';
begin
  if request_role not in ('anon', 'authenticated', 'service_role') then
    raise exception 'live_audience: % is not a request role', request_role using errcode = '22023';
  end if;
  -- One prepared statement per table and session (the pool's connections live long): its plan is cached, so a
  -- user costs one execution, not a parse and plan. The plan is per role (Postgres replans for another one) and
  -- never holds a user's claims: RLS reads them when it runs. Names come from the catalogs, quoted by format.
  for j in 1 .. coalesce(array_length(tables, 1), 0) loop
    continue when not has_table_privilege(request_role, tables[j], 'select');
    select string_agg('t.' || quote_ident(a.attname), ', ' order by k.ord),
           string_agg('k.' || quote_ident(a.attname), ', ' order by k.ord)
      into t_key, k_key
    from pg_index i
    cross join unnest(i.indkey) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
    where i.indrelid = tables[j] and i.indisprimary;
    continue when t_key is null;
    prepared := 'tuskbase_live_' || tables[j]::oid || '_' || md5(t_key);
    if not exists (select from pg_prepared_statements p where p.name = prepared) then
      execute format(
        -- Key by key, each an index lookup under RLS, stopping at the first visible one (LATERAL ... LIMIT 1 keeps
        -- the planner from hashing the whole table, which would evaluate the policy on every row).
        'prepare %1$I(jsonb) as select exists (select from jsonb_populate_recordset(null::%2$s, $1) k, '
        'lateral (select from %2$s t where (%3$s) = (%4$s) limit 1) v)', prepared, tables[j], t_key, k_key);
    end if;
    checks := checks || format('execute %I(%L)', prepared, keys[j]);
  end loop;
  if coalesce(array_length(checks, 1), 0) = 0 then
    return audience;
  end if;
  perform set_config('role', request_role, true);
  for i in 1 .. coalesce(array_length(claims, 1), 0) loop
    perform set_config('request.jwt.claims', claims[i], true);
    for j in 1 .. array_length(checks, 1) loop
      execute checks[j] into seen;
      if seen then
        audience := audience || i;
        exit;
      end if;
    end loop;
  end loop;
  perform set_config('role', 'none', true);
  perform set_config('request.jwt.claims', '', true);
  return audience;
end
$$;
comment on function sync.live_audience(text, text[], regclass[], jsonb[]) is
  'Live channel: positions of the users (claims) that may see one of the given keys under their RLS.';

revoke execute on function sync.live_audience(text, text[], regclass[], jsonb[]) from public;
grant usage on schema sync to authenticator;
grant execute on function sync.live_audience(text, text[], regclass[], jsonb[]) to authenticator;
