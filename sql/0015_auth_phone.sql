-- Phone sign-in with SMS codes (TUSKBASE_AUTH_PHONE_ENABLED): codes for sign-up / sign-in ('sms') and for a
-- phone change, the pending new number, and the dev outbox of SMS when no webhook is configured.
alter table auth.one_time_tokens drop constraint one_time_tokens_token_type_check;
alter table auth.one_time_tokens add constraint one_time_tokens_token_type_check
  check (token_type in ('confirmation', 'magiclink', 'recovery', 'email_change', 'invite', 'reauthentication',
                        'sms', 'phone_change'));
alter table auth.users add column phone_change text, add column phone_change_sent_at timestamptz;

create table auth.sms_outbox (
  id bigint generated always as identity primary key,
  recipient text not null,
  body text not null,
  created_at timestamptz not null default now()
);
grant select, insert, delete on auth.sms_outbox to tuskbase_auth;

-- Housekeeping of the auth tables, run every few minutes by one API replica (advisory lock): expired
-- rate-limit windows, used or expired codes and flows, old links of refresh-token chains, revoked sessions
-- whose access tokens have all expired, and old dev mails.
-- A revoked refresh token is kept `keep_revoked` (reuse of an older one is refused as unknown instead of
-- revoking its session: the token is useless either way).
-- Audit entries are kept 90 days, dev mails and SMS 7 days.
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
  delete from auth.sms_outbox where created_at < now() - interval '7 days';
  delete from auth.mfa_challenges where created_at < now() - interval '1 day';
  delete from auth.audit_log where created_at < now() - interval '90 days';
$$;
revoke execute on function auth.cleanup(interval, interval, interval) from public;
grant execute on function auth.cleanup(interval, interval, interval) to tuskbase_auth;
