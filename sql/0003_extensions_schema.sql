-- The schema Supabase keeps extensions in: migrations written for Supabase say
-- `create extension if not exists "uuid-ossp" with schema extensions` and call `extensions.uuid_generate_v4()`.
create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;
