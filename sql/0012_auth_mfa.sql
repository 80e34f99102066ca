-- Multi-factor authentication with TOTP (RFC 6238), as Supabase Auth's /factors API: a factor is enrolled
-- unverified, verified by a first challenge, and each verified challenge raises the session to aal2.
create table auth.mfa_factors (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  friendly_name text,
  factor_type text not null check (factor_type in ('totp')),
  status text not null default 'unverified' check (status in ('unverified', 'verified')),
  secret text not null,
  -- The last TOTP time step accepted: a code is good once (no replay within its 30 s window).
  last_used_step bigint,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index mfa_factors_user_id on auth.mfa_factors (user_id);
create unique index mfa_factors_user_friendly_name on auth.mfa_factors (user_id, friendly_name)
  where friendly_name is not null and friendly_name <> '';

create table auth.mfa_challenges (
  id uuid primary key default gen_random_uuid(),
  factor_id uuid not null references auth.mfa_factors (id) on delete cascade,
  created_at timestamptz not null default now(),
  verified_at timestamptz,
  ip inet
);
create index mfa_challenges_factor_id on auth.mfa_challenges (factor_id);

grant select, insert, update, delete on auth.mfa_factors, auth.mfa_challenges to tuskbase_auth;

-- Supabase's older helper, still used by ported policies.
create or replace function auth.email() returns text
language sql stable
as $$
  select nullif(auth.jwt() ->> 'email', '')
$$;
grant execute on function auth.email() to anon, authenticated, service_role;
