-- Who did what to which account, for investigations (a lost phone, a leaked refresh token): one row per
-- security-relevant event, written in the same transaction as the event itself.
create table auth.audit_log (
  id bigint generated always as identity primary key,
  user_id uuid,
  session_id uuid,
  action text not null,
  detail jsonb not null default '{}',
  ip inet,
  created_at timestamptz not null default now()
);
create index audit_log_user_id on auth.audit_log (user_id, created_at);
grant select, insert, delete on auth.audit_log to tuskbase_auth;
comment on table auth.audit_log is
  'Auth events: signup, login, logout, session_revoked, token_reuse_detected, password_changed, email_changed, '
  'mfa_verified, identity_linked, identity_unlinked, user_banned, user_deleted.';

-- Housekeeping keeps 90 days of audit trail.
create or replace function auth.cleanup(rate_window interval, token_lifetime interval,
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
  delete from auth.mfa_challenges where created_at < now() - interval '1 day';
  delete from auth.audit_log where created_at < now() - interval '90 days';
$$;
