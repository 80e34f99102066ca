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
