-- Secure email change (TUSKBASE_AUTH_SECURE_EMAIL_CHANGE): the current address confirms too.
alter table auth.one_time_tokens drop constraint one_time_tokens_token_type_check;
alter table auth.one_time_tokens add constraint one_time_tokens_token_type_check
  check (token_type in ('confirmation', 'magiclink', 'recovery', 'email_change', 'email_change_current', 'invite',
                        'reauthentication', 'sms', 'phone_change'));
