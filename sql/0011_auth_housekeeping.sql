-- Housekeeping of the auth tables, run every few minutes by one API replica (advisory lock): expired
-- rate-limit windows, used or expired codes and flows, old links of refresh-token chains, revoked sessions
-- whose access tokens have all expired, and old dev mails.
-- A revoked refresh token is kept `keep_revoked` (reuse of an older one is refused as unknown instead of
-- revoking its session: the token is useless either way).
create function auth.cleanup(rate_window interval, token_lifetime interval,
                             keep_revoked interval default interval '30 days') returns void
language sql
set search_path = ''
as $$
  delete from auth.rate_limits where window_start < now() - rate_window;
  delete from auth.one_time_tokens where expires_at < now();
  delete from auth.flow_state where created_at < now() - interval '1 day';
  delete from auth.refresh_tokens where revoked and updated_at < now() - keep_revoked;
  delete from auth.sessions where revoked_at < now() - greatest(token_lifetime, keep_revoked);
  delete from auth.mail_outbox where created_at < now() - interval '7 days';
$$;
revoke execute on function auth.cleanup(interval, interval, interval) from public;
grant execute on function auth.cleanup(interval, interval, interval) to tuskbase_auth;
