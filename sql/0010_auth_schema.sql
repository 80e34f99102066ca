-- Auth: users, identities, per-device sessions, rotating refresh tokens, one-time tokens, PKCE/OAuth flow
-- state, the dev mail outbox and rate-limit counters. Column names follow Supabase's auth schema where one
-- exists, so that app SQL written for Supabase (joins on auth.users, references auth.users(id)) ports.

-- The auth service runs its statements as this role (the API's authenticator may SET ROLE to it); request
-- roles (anon, authenticated, service_role) get no rights on these tables.
do $$
begin
  if not exists (select from pg_roles where rolname = 'tuskbase_auth') then
    create role tuskbase_auth nologin noinherit;
  end if;
end
$$;
grant tuskbase_auth to authenticator;
grant usage on schema auth to tuskbase_auth;

create table auth.users (
  id uuid primary key default gen_random_uuid(),
  aud text not null default 'authenticated',
  role text not null default 'authenticated',
  email text,
  encrypted_password text,
  email_confirmed_at timestamptz,
  invited_at timestamptz,
  confirmation_sent_at timestamptz,
  recovery_sent_at timestamptz,
  email_change text,
  email_change_sent_at timestamptz,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb not null default '{}',
  raw_user_meta_data jsonb not null default '{}',
  phone text,
  phone_confirmed_at timestamptz,
  confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
  banned_until timestamptz,
  is_anonymous boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint users_email_lower check (email = lower(email))
);
create unique index users_email_key on auth.users (email) where email is not null and deleted_at is null;
create unique index users_phone_key on auth.users (phone) where phone is not null and deleted_at is null;
comment on table auth.users is 'Accounts; email stored lower-case; encrypted_password is an argon2id hash.';

create table auth.identities (
  id uuid primary key default gen_random_uuid(),
  provider_id text not null,
  user_id uuid not null references auth.users (id) on delete cascade,
  provider text not null,
  identity_data jsonb not null default '{}',
  email text generated always as (lower(identity_data ->> 'email')) stored,
  last_sign_in_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (provider, provider_id)
);
create index identities_user_id on auth.identities (user_id);

-- One row per signed-in device. A revoked session keeps its row (revoked_at) so that tokens naming it
-- are refused by auth.session_is_active() and its refresh tokens stop at once.
create table auth.sessions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  aal text not null default 'aal1',
  amr jsonb not null default '[]',
  device_id text,
  platform text,
  app_version text,
  user_agent text,
  ip inet,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  refreshed_at timestamptz,
  last_seen_at timestamptz not null default now(),
  revoked_at timestamptz,
  revoked_reason text
);
create index sessions_user_id on auth.sessions (user_id);

-- Refresh tokens are opaque; only their SHA-256 is stored. Each use revokes the token and creates its child.
create table auth.refresh_tokens (
  id bigint generated always as identity primary key,
  token_hash bytea not null unique,
  session_id uuid not null references auth.sessions (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  parent_id bigint references auth.refresh_tokens (id) on delete set null,
  revoked boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index refresh_tokens_session_id on auth.refresh_tokens (session_id);

-- Mailed codes and links: token_hash = sha256(hex) of (email || code), as Supabase builds magic links.
create table auth.one_time_tokens (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  token_type text not null check (token_type in ('confirmation', 'magiclink', 'recovery', 'email_change',
                                                  'invite')),
  token_hash text not null,
  relates_to text not null,
  flow_state_id uuid,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);
create index one_time_tokens_hash on auth.one_time_tokens (token_hash);
create unique index one_time_tokens_user_type on auth.one_time_tokens (user_id, token_type);

-- PKCE and OAuth flows: what an auth code (or an OAuth `state`) stands for until it is exchanged once.
create table auth.flow_state (
  id uuid primary key default gen_random_uuid(),
  user_id uuid references auth.users (id) on delete cascade,
  auth_code_hash bytea unique,
  code_challenge text,
  code_challenge_method text check (code_challenge_method in ('s256', 'plain')),
  provider_type text not null,
  authentication_method text not null,
  redirect_to text,
  oauth_state_hash bytea unique,
  oauth_nonce text,
  oauth_verifier text,
  created_at timestamptz not null default now(),
  auth_code_issued_at timestamptz
);

-- Mails written when no SMTP server is configured (tuskbase dev): a developer clicks the link from here.
create table auth.mail_outbox (
  id bigint generated always as identity primary key,
  recipient text not null,
  subject text not null,
  body text not null,
  created_at timestamptz not null default now()
);

-- Fixed-window counters of the credential endpoints, shared by every API replica.
create unlogged table auth.rate_limits (
  bucket text not null,
  key text not null,
  window_start timestamptz not null,
  hits integer not null,
  primary key (bucket, key)
);

grant select, insert, update, delete on auth.users, auth.identities, auth.sessions, auth.refresh_tokens,
  auth.one_time_tokens, auth.flow_state, auth.mail_outbox, auth.rate_limits to tuskbase_auth;

-- Policies call this to refuse the tokens of revoked sessions (a lost phone) before they expire:
--   create policy ... using (auth.session_is_active() and owner_id = auth.uid());
-- False when the token names no session (the anon and service keys, tokens minted outside auth), when the
-- session was revoked or signed out, or when its user is gone or banned.
create function auth.session_is_active() returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (
    select 1
    from auth.sessions s join auth.users u on u.id = s.user_id
    where s.id = nullif(auth.jwt() ->> 'session_id', '')::uuid
      and s.user_id = nullif(auth.jwt() ->> 'sub', '')::uuid
      and s.revoked_at is null
      and u.deleted_at is null
      and (u.banned_until is null or u.banned_until <= now())
  )
$$;
revoke execute on function auth.session_is_active() from public;
grant execute on function auth.session_is_active() to anon, authenticated, service_role;
