-- The fast path of a pull that has nothing to send: one call, by the API's login role, no role switch and no
-- transaction. It reveals a client's position only to `authenticator` (request roles are not its members).
create function sync.client_state(client text)
returns table (user_key text, pull_no integer, nonce text, prev_nonce text, seen_hours double precision,
               seq bigint, pruned_seq bigint, epoch integer)
language sql stable security definer set search_path = ''
as $$
  select c.user_key, c.pull_no, c.nonce, c.prev_nonce, extract(epoch from now() - c.seen_at) / 3600,
         f.seq, f.pruned_seq, f.epoch
  from sync.feed_state f left join sync.clients c on c.client_id = client
$$;
revoke execute on function sync.client_state(text) from public;
grant usage on schema sync to authenticator;
grant execute on function sync.client_state(text) to authenticator;
