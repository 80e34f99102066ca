-- Codes mailed by GET /reauthenticate, required to change a password from an old session when
-- TUSKBASE_AUTH_SECURE_PASSWORD_CHANGE is on.
alter table auth.one_time_tokens drop constraint one_time_tokens_token_type_check;
alter table auth.one_time_tokens add constraint one_time_tokens_token_type_check
  check (token_type in ('confirmation', 'magiclink', 'recovery', 'email_change', 'invite', 'reauthentication'));
