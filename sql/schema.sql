-- The schema after every migration in sql/. Generated: python -m tests.platform.schema_file --write
--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: auth; Type: SCHEMA; Schema: -; Owner: postgres
--

CREATE SCHEMA auth;

ALTER SCHEMA auth OWNER TO postgres;

--
-- Name: dramatiq; Type: SCHEMA; Schema: -; Owner: postgres
--

CREATE SCHEMA dramatiq;

ALTER SCHEMA dramatiq OWNER TO postgres;

--
-- Name: extensions; Type: SCHEMA; Schema: -; Owner: postgres
--

CREATE SCHEMA extensions;

ALTER SCHEMA extensions OWNER TO postgres;

--
-- Name: sync; Type: SCHEMA; Schema: -; Owner: postgres
--

CREATE SCHEMA sync;

ALTER SCHEMA sync OWNER TO postgres;

--
-- Name: tuskbase; Type: SCHEMA; Schema: -; Owner: postgres
--

CREATE SCHEMA tuskbase;

ALTER SCHEMA tuskbase OWNER TO postgres;

--
-- Name: state; Type: TYPE; Schema: dramatiq; Owner: postgres
--

CREATE TYPE dramatiq.state AS ENUM (
    'queued',
    'consumed',
    'rejected'
);

ALTER TYPE dramatiq.state OWNER TO postgres;

--
-- Name: cleanup(interval, interval, interval); Type: FUNCTION; Schema: auth; Owner: postgres
--

CREATE FUNCTION auth.cleanup(rate_window interval, token_lifetime interval, keep_revoked interval DEFAULT '30 days'::interval) RETURNS void
    LANGUAGE sql
    SET search_path TO ''
    AS $$
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

ALTER FUNCTION auth.cleanup(rate_window interval, token_lifetime interval, keep_revoked interval) OWNER TO postgres;

--
-- Name: email(); Type: FUNCTION; Schema: auth; Owner: postgres
--

CREATE FUNCTION auth.email() RETURNS text
    LANGUAGE sql STABLE
    AS $$
  select nullif(auth.jwt() ->> 'email', '')
$$;

ALTER FUNCTION auth.email() OWNER TO postgres;

--
-- Name: FUNCTION email(); Type: COMMENT; Schema: auth; Owner: postgres
--

COMMENT ON FUNCTION auth.email() IS 'The email claim of the request token (Supabase''s older helper).';

--
-- Name: jwt(); Type: FUNCTION; Schema: auth; Owner: postgres
--

CREATE FUNCTION auth.jwt() RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$
  select coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb
$$;

ALTER FUNCTION auth.jwt() OWNER TO postgres;

--
-- Name: role(); Type: FUNCTION; Schema: auth; Owner: postgres
--

CREATE FUNCTION auth.role() RETURNS text
    LANGUAGE sql STABLE
    AS $$
  select coalesce(auth.jwt() ->> 'role', current_user)
$$;

ALTER FUNCTION auth.role() OWNER TO postgres;

--
-- Name: session_is_active(); Type: FUNCTION; Schema: auth; Owner: postgres
--

CREATE FUNCTION auth.session_is_active() RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
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

ALTER FUNCTION auth.session_is_active() OWNER TO postgres;

--
-- Name: FUNCTION session_is_active(); Type: COMMENT; Schema: auth; Owner: postgres
--

COMMENT ON FUNCTION auth.session_is_active() IS 'True when the request token names a live session (not signed out, not revoked as a lost device, user neither deleted nor banned). Use in policies as (select auth.session_is_active()) so it runs once per statement.';

--
-- Name: uid(); Type: FUNCTION; Schema: auth; Owner: postgres
--

CREATE FUNCTION auth.uid() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$
  select nullif(auth.jwt() ->> 'sub', '')::uuid
$$;

ALTER FUNCTION auth.uid() OWNER TO postgres;

--
-- Name: client_rows_have_clients(); Type: FUNCTION; Schema: sync; Owner: postgres
--

CREATE FUNCTION sync.client_rows_have_clients() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
declare
  missing text;
begin
  with named as (select distinct client_id from added),
  locked as (select c.client_id from sync.clients c where c.client_id in (select client_id from named)
             for key share)
  select n.client_id into missing from named n where n.client_id not in (select client_id from locked) limit 1;
  if found then
    raise foreign_key_violation using message = format('sync.client_rows names client %L, which does not exist',
                                                       missing);
  end if;
  return null;
end
$$;

ALTER FUNCTION sync.client_rows_have_clients() OWNER TO postgres;

--
-- Name: client_rows_keep_client(); Type: FUNCTION; Schema: sync; Owner: postgres
--

CREATE FUNCTION sync.client_rows_keep_client() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
begin
  raise foreign_key_violation using message = 'sync.client_rows.client_id cannot be changed';
end
$$;

ALTER FUNCTION sync.client_rows_keep_client() OWNER TO postgres;

--
-- Name: client_state(text); Type: FUNCTION; Schema: sync; Owner: postgres
--

CREATE FUNCTION sync.client_state(client text) RETURNS TABLE(user_key text, pull_no integer, nonce text, prev_nonce text, seen_hours double precision, seq bigint, pruned_seq bigint, epoch integer)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO ''
    AS $$
  select c.user_key, c.pull_no, c.nonce, c.prev_nonce, extract(epoch from now() - c.seen_at) / 3600,
         f.seq, f.pruned_seq, f.epoch
  from sync.feed_state f left join sync.clients c on c.client_id = client
$$;

ALTER FUNCTION sync.client_state(client text) OWNER TO postgres;

--
-- Name: clients_drop_rows(); Type: FUNCTION; Schema: sync; Owner: postgres
--

CREATE FUNCTION sync.clients_drop_rows() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
begin
  delete from sync.client_rows r using gone where r.client_id = gone.client_id;
  return null;
end
$$;

ALTER FUNCTION sync.clients_drop_rows() OWNER TO postgres;

--
-- Name: disable(regclass); Type: FUNCTION; Schema: sync; Owner: postgres
--

CREATE FUNCTION sync.disable(target regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
begin
  if exists (select from pg_publication_rel pr join pg_publication p on p.oid = pr.prpubid
             where p.pubname = 'tuskbase_sync' and pr.prrelid = target) then
    execute format('alter publication tuskbase_sync drop table %s', target);
  end if;
  delete from sync.tables where relid = target;
end
$$;

ALTER FUNCTION sync.disable(target regclass) OWNER TO postgres;

--
-- Name: enable(regclass, text, boolean); Type: FUNCTION; Schema: sync; Owner: postgres
--

CREATE FUNCTION sync.enable(target regclass, conflict text DEFAULT 'lww'::text, served boolean DEFAULT true) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
declare
  rule text := conflict;
  fn regprocedure;
  key_columns text[];
begin
  if (select relkind from pg_class where oid = target) <> 'r' then
    raise exception 'sync.enable: % is not a plain table (partitioned tables and views cannot sync)', target
      using errcode = '22023';
  end if;
  if not exists (select from pg_index where indrelid = target and indisprimary) then
    raise exception 'sync.enable: % has no primary key', target using errcode = '22023';
  end if;
  if rule not in ('reject', 'lww', 'merge') then
    fn := to_regprocedure(rule || '(jsonb, jsonb, text[])');
    if fn is null then
      raise exception 'sync.enable: conflict must be reject, lww, merge or a function (jsonb, jsonb, text[]), got %',
        rule using errcode = '22023';
    end if;
    rule := 'custom';
  end if;
  select array_agg(a.attname::text order by k.ord) into key_columns
  from pg_index i cross join unnest(i.indkey) with ordinality k(attnum, ord)
  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
  where i.indrelid = target and i.indisprimary;
  if served and cardinality(key_columns) > 1 then
    raise warning 'sync.enable: % has a primary key of % columns (%): WatermelonDB cannot sync it (its records have one string id), so /sync/v1/watermelon leaves it out; /sync/v1/pull and /sync/v1/push serve it',
      target, cardinality(key_columns), array_to_string(key_columns, ', ')
      using hint = 'For WatermelonDB, give the table a one-column primary key (a surrogate id) and keep the pair '
                   'unique; see "Composite keys" in the README. A table only policies read: served => false.';
  end if;
  execute format('alter table %s replica identity full', target);
  if not exists (select from pg_publication_rel pr join pg_publication p on p.oid = pr.prpubid
                 where p.pubname = 'tuskbase_sync' and pr.prrelid = target) then
    execute format('alter publication tuskbase_sync add table %s', target);
  end if;
  insert into sync.tables (relid, served, conflict, resolver) values (target, served, rule, fn)
  on conflict (relid) do update set served = excluded.served, conflict = excluded.conflict,
                                    resolver = excluded.resolver;
end
$$;

ALTER FUNCTION sync.enable(target regclass, conflict text, served boolean) OWNER TO postgres;

--
-- Name: FUNCTION enable(target regclass, conflict text, served boolean); Type: COMMENT; Schema: sync; Owner: postgres
--

COMMENT ON FUNCTION sync.enable(target regclass, conflict text, served boolean) IS 'Opt a table into sync (publication + REPLICA IDENTITY FULL) with its push conflict rule.';

--
-- Name: live_audience(text, text[], regclass[], jsonb[]); Type: FUNCTION; Schema: sync; Owner: postgres
--

CREATE FUNCTION sync.live_audience(request_role text, claims text[], tables regclass[], keys jsonb[]) RETURNS integer[]
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $_$
declare
  checks text[] := '{}';
  t_key text;
  k_key text;
  prepared text;
  seen boolean;
  audience integer[] := '{}';
begin
  if request_role not in ('anon', 'authenticated', 'service_role') then
    raise exception 'live_audience: % is not a request role', request_role using errcode = '22023';
  end if;
  -- One prepared statement per table and session (the pool's connections live long): its plan is cached, so a
  -- user costs one execution, not a parse and plan. The plan is per role (Postgres replans for another one) and
  -- never holds a user's claims: RLS reads them when it runs. Names come from the catalogs, quoted by format.
  for j in 1 .. coalesce(array_length(tables, 1), 0) loop
    continue when not has_table_privilege(request_role, tables[j], 'select');
    select string_agg('t.' || quote_ident(a.attname), ', ' order by k.ord),
           string_agg('k.' || quote_ident(a.attname), ', ' order by k.ord)
      into t_key, k_key
    from pg_index i
    cross join unnest(i.indkey) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
    where i.indrelid = tables[j] and i.indisprimary;
    continue when t_key is null;
    prepared := 'tuskbase_live_' || tables[j]::oid || '_' || md5(t_key);
    if not exists (select from pg_prepared_statements p where p.name = prepared) then
      execute format(
        -- Key by key, each an index lookup under RLS, stopping at the first visible one (LATERAL ... LIMIT 1 keeps
        -- the planner from hashing the whole table, which would evaluate the policy on every row).
        'prepare %1$I(jsonb) as select exists (select from jsonb_populate_recordset(null::%2$s, $1) k, '
        'lateral (select from %2$s t where (%3$s) = (%4$s) limit 1) v)', prepared, tables[j], t_key, k_key);
    end if;
    checks := checks || format('execute %I(%L)', prepared, keys[j]);
  end loop;
  if coalesce(array_length(checks, 1), 0) = 0 then
    return audience;
  end if;
  perform set_config('role', request_role, true);
  for i in 1 .. coalesce(array_length(claims, 1), 0) loop
    perform set_config('request.jwt.claims', claims[i], true);
    for j in 1 .. array_length(checks, 1) loop
      execute checks[j] into seen;
      if seen then
        audience := audience || i;
        exit;
      end if;
    end loop;
  end loop;
  perform set_config('role', 'none', true);
  perform set_config('request.jwt.claims', '', true);
  return audience;
end
$_$;

ALTER FUNCTION sync.live_audience(request_role text, claims text[], tables regclass[], keys jsonb[]) OWNER TO postgres;

--
-- Name: FUNCTION live_audience(request_role text, claims text[], tables regclass[], keys jsonb[]); Type: COMMENT; Schema: sync; Owner: postgres
--

COMMENT ON FUNCTION sync.live_audience(request_role text, claims text[], tables regclass[], keys jsonb[]) IS 'Live channel: positions of the users (claims) that may see one of the given keys under their RLS.';

--
-- Name: notify_schema_change(); Type: FUNCTION; Schema: tuskbase; Owner: postgres
--

CREATE FUNCTION tuskbase.notify_schema_change() RETURNS event_trigger
    LANGUAGE plpgsql
    SET search_path TO ''
    AS $$
begin
  perform pg_notify('tuskbase_schema', 'reload');
end
$$;

ALTER FUNCTION tuskbase.notify_schema_change() OWNER TO postgres;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: audit_log; Type: TABLE; Schema: auth; Owner: postgres
--

CREATE TABLE auth.audit_log (
    id bigint NOT NULL,
    user_id uuid,
    session_id uuid,
    action text NOT NULL,
    detail jsonb DEFAULT '{}'::jsonb NOT NULL,
    ip inet,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE auth.audit_log OWNER TO postgres;

--
-- Name: TABLE audit_log; Type: COMMENT; Schema: auth; Owner: postgres
--

COMMENT ON TABLE auth.audit_log IS 'Auth events: signup, login, logout, session_revoked, token_reuse_detected, password_changed, email_changed, mfa_verified, identity_linked, identity_unlinked, user_banned, user_deleted.';

--
-- Name: audit_log_id_seq; Type: SEQUENCE; Schema: auth; Owner: postgres
--

ALTER TABLE auth.audit_log ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME auth.audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: flow_state; Type: TABLE; Schema: auth; Owner: postgres
--

CREATE TABLE auth.flow_state (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid,
    auth_code_hash bytea,
    code_challenge text,
    code_challenge_method text,
    provider_type text NOT NULL,
    authentication_method text NOT NULL,
    redirect_to text,
    oauth_state_hash bytea,
    oauth_nonce text,
    oauth_verifier text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    auth_code_issued_at timestamp with time zone,
    CONSTRAINT flow_state_code_challenge_method_check CHECK ((code_challenge_method = ANY (ARRAY['s256'::text, 'plain'::text])))
);

ALTER TABLE auth.flow_state OWNER TO postgres;

--
-- Name: identities; Type: TABLE; Schema: auth; Owner: postgres
--

CREATE TABLE auth.identities (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    provider_id text NOT NULL,
    user_id uuid NOT NULL,
    provider text NOT NULL,
    identity_data jsonb DEFAULT '{}'::jsonb NOT NULL,
    email text GENERATED ALWAYS AS (lower((identity_data ->> 'email'::text))) STORED,
    last_sign_in_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE auth.identities OWNER TO postgres;

--
-- Name: mail_outbox; Type: TABLE; Schema: auth; Owner: postgres
--

CREATE TABLE auth.mail_outbox (
    id bigint NOT NULL,
    recipient text NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE auth.mail_outbox OWNER TO postgres;

--
-- Name: TABLE mail_outbox; Type: COMMENT; Schema: auth; Owner: postgres
--

COMMENT ON TABLE auth.mail_outbox IS 'Mails kept when no SMTP server is configured (tuskbase dev).';

--
-- Name: mail_outbox_id_seq; Type: SEQUENCE; Schema: auth; Owner: postgres
--

ALTER TABLE auth.mail_outbox ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME auth.mail_outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: mfa_challenges; Type: TABLE; Schema: auth; Owner: postgres
--

CREATE TABLE auth.mfa_challenges (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    factor_id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    verified_at timestamp with time zone,
    ip inet
);

ALTER TABLE auth.mfa_challenges OWNER TO postgres;

--
-- Name: mfa_factors; Type: TABLE; Schema: auth; Owner: postgres
--

CREATE TABLE auth.mfa_factors (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    friendly_name text,
    factor_type text NOT NULL,
    status text DEFAULT 'unverified'::text NOT NULL,
    secret text NOT NULL,
    last_used_step bigint,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT mfa_factors_factor_type_check CHECK ((factor_type = 'totp'::text)),
    CONSTRAINT mfa_factors_status_check CHECK ((status = ANY (ARRAY['unverified'::text, 'verified'::text])))
);

ALTER TABLE auth.mfa_factors OWNER TO postgres;

--
-- Name: one_time_tokens; Type: TABLE; Schema: auth; Owner: postgres
--

CREATE TABLE auth.one_time_tokens (
    id bigint NOT NULL,
    user_id uuid NOT NULL,
    token_type text NOT NULL,
    token_hash text NOT NULL,
    relates_to text NOT NULL,
    flow_state_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT one_time_tokens_token_type_check CHECK ((token_type = ANY (ARRAY['confirmation'::text, 'magiclink'::text, 'recovery'::text, 'email_change'::text, 'email_change_current'::text, 'invite'::text, 'reauthentication'::text, 'sms'::text, 'phone_change'::text])))
);

ALTER TABLE auth.one_time_tokens OWNER TO postgres;

--
-- Name: TABLE one_time_tokens; Type: COMMENT; Schema: auth; Owner: postgres
--

COMMENT ON TABLE auth.one_time_tokens IS 'Mailed and texted codes: token_hash = sha256 hex of (email or phone digits || code), also the link token.';

--
-- Name: one_time_tokens_id_seq; Type: SEQUENCE; Schema: auth; Owner: postgres
--

ALTER TABLE auth.one_time_tokens ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME auth.one_time_tokens_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: rate_limits; Type: TABLE; Schema: auth; Owner: postgres
--

CREATE UNLOGGED TABLE auth.rate_limits (
    bucket text NOT NULL,
    key text NOT NULL,
    window_start timestamp with time zone NOT NULL,
    hits integer NOT NULL
);

ALTER TABLE auth.rate_limits OWNER TO postgres;

--
-- Name: TABLE rate_limits; Type: COMMENT; Schema: auth; Owner: postgres
--

COMMENT ON TABLE auth.rate_limits IS 'Fixed-window counters of the credential endpoints (bucket ip:<endpoint> or id:<endpoint>).';

--
-- Name: refresh_tokens; Type: TABLE; Schema: auth; Owner: postgres
--

CREATE TABLE auth.refresh_tokens (
    id bigint NOT NULL,
    token_hash bytea NOT NULL,
    session_id uuid NOT NULL,
    user_id uuid NOT NULL,
    parent_id bigint,
    revoked boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE auth.refresh_tokens OWNER TO postgres;

--
-- Name: TABLE refresh_tokens; Type: COMMENT; Schema: auth; Owner: postgres
--

COMMENT ON TABLE auth.refresh_tokens IS 'Rotating refresh tokens, SHA-256 only; a revoked token used after the reuse interval revokes its session.';

--
-- Name: refresh_tokens_id_seq; Type: SEQUENCE; Schema: auth; Owner: postgres
--

ALTER TABLE auth.refresh_tokens ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME auth.refresh_tokens_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: sessions; Type: TABLE; Schema: auth; Owner: postgres
--

CREATE TABLE auth.sessions (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    aal text DEFAULT 'aal1'::text NOT NULL,
    amr jsonb DEFAULT '[]'::jsonb NOT NULL,
    device_id text,
    platform text,
    app_version text,
    user_agent text,
    ip inet,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    refreshed_at timestamp with time zone,
    last_seen_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone,
    revoked_reason text
);

ALTER TABLE auth.sessions OWNER TO postgres;

--
-- Name: TABLE sessions; Type: COMMENT; Schema: auth; Owner: postgres
--

COMMENT ON TABLE auth.sessions IS 'One row per signed-in device: device_id, platform, app_version from the X-Device-Id, X-Device-Platform and X-App-Version headers (else X-Client-Info), user_agent, ip, last_seen_at (refresh and GET /user).';

--
-- Name: sms_outbox; Type: TABLE; Schema: auth; Owner: postgres
--

CREATE TABLE auth.sms_outbox (
    id bigint NOT NULL,
    recipient text NOT NULL,
    body text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE auth.sms_outbox OWNER TO postgres;

--
-- Name: TABLE sms_outbox; Type: COMMENT; Schema: auth; Owner: postgres
--

COMMENT ON TABLE auth.sms_outbox IS 'SMS kept when no SMS webhook is configured (tuskbase dev).';

--
-- Name: sms_outbox_id_seq; Type: SEQUENCE; Schema: auth; Owner: postgres
--

ALTER TABLE auth.sms_outbox ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME auth.sms_outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: users; Type: TABLE; Schema: auth; Owner: postgres
--

CREATE TABLE auth.users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    aud text DEFAULT 'authenticated'::text NOT NULL,
    role text DEFAULT 'authenticated'::text NOT NULL,
    email text,
    encrypted_password text,
    email_confirmed_at timestamp with time zone,
    invited_at timestamp with time zone,
    confirmation_sent_at timestamp with time zone,
    recovery_sent_at timestamp with time zone,
    email_change text,
    email_change_sent_at timestamp with time zone,
    last_sign_in_at timestamp with time zone,
    raw_app_meta_data jsonb DEFAULT '{}'::jsonb NOT NULL,
    raw_user_meta_data jsonb DEFAULT '{}'::jsonb NOT NULL,
    phone text,
    phone_confirmed_at timestamp with time zone,
    confirmed_at timestamp with time zone GENERATED ALWAYS AS (LEAST(email_confirmed_at, phone_confirmed_at)) STORED,
    banned_until timestamp with time zone,
    is_anonymous boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone,
    phone_change text,
    phone_change_sent_at timestamp with time zone,
    CONSTRAINT users_email_lower CHECK ((email = lower(email)))
);

ALTER TABLE auth.users OWNER TO postgres;

--
-- Name: TABLE users; Type: COMMENT; Schema: auth; Owner: postgres
--

COMMENT ON TABLE auth.users IS 'Accounts; email stored lower-case; encrypted_password is an argon2id hash.';

--
-- Name: queue; Type: TABLE; Schema: dramatiq; Owner: postgres
--

CREATE TABLE dramatiq.queue (
    message_id uuid NOT NULL,
    queue_name text DEFAULT 'default'::text NOT NULL,
    state dramatiq.state,
    mtime timestamp with time zone DEFAULT now(),
    message jsonb,
    "position" bigint NOT NULL,
    available_at timestamp with time zone DEFAULT now() NOT NULL,
    worker_id uuid,
    consumed_at timestamp with time zone
);

ALTER TABLE dramatiq.queue OWNER TO postgres;

--
-- Name: queue_position_seq; Type: SEQUENCE; Schema: dramatiq; Owner: postgres
--

ALTER TABLE dramatiq.queue ALTER COLUMN "position" ADD GENERATED BY DEFAULT AS IDENTITY (
    SEQUENCE NAME dramatiq.queue_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: result; Type: TABLE; Schema: dramatiq; Owner: postgres
--

CREATE TABLE dramatiq.result (
    message_id uuid NOT NULL,
    result jsonb,
    expires_at timestamp with time zone
);

ALTER TABLE dramatiq.result OWNER TO postgres;

--
-- Name: worker; Type: TABLE; Schema: dramatiq; Owner: postgres
--

CREATE TABLE dramatiq.worker (
    worker_id uuid NOT NULL,
    heartbeat_at timestamp with time zone NOT NULL
);

ALTER TABLE dramatiq.worker OWNER TO postgres;

--
-- Name: changes; Type: TABLE; Schema: sync; Owner: postgres
--

CREATE TABLE sync.changes (
    seq bigint NOT NULL,
    tbl integer NOT NULL,
    op "char" NOT NULL,
    key jsonb,
    "row" json,
    cols text[],
    xid bigint NOT NULL,
    committed_at timestamp with time zone NOT NULL
);

ALTER TABLE sync.changes OWNER TO postgres;

--
-- Name: TABLE changes; Type: COMMENT; Schema: sync; Owner: postgres
--

COMMENT ON TABLE sync.changes IS 'Change log in commit order (seq assigned by the feed consumer): table, operation, primary key, changed columns.';

--
-- Name: COLUMN changes."row"; Type: COMMENT; Schema: sync; Owner: postgres
--

COMMENT ON COLUMN sync.changes."row" IS 'Row image; the feed leaves it null (pulls read rows under RLS, merges use cols). Kept for decoders asked for rows.';

--
-- Name: COLUMN changes.cols; Type: COMMENT; Schema: sync; Owner: postgres
--

COMMENT ON COLUMN sync.changes.cols IS 'Updates: the columns whose value changed (an untouched TOASTed value is not).';

--
-- Name: COLUMN changes.xid; Type: COMMENT; Schema: sync; Owner: postgres
--

COMMENT ON COLUMN sync.changes.xid IS 'Top-level id of the writing transaction (= xmin of rows it wrote outside savepoints).';

--
-- Name: client_rows; Type: TABLE; Schema: sync; Owner: postgres
--

CREATE TABLE sync.client_rows (
    client_id text NOT NULL,
    tbl integer NOT NULL,
    key text NOT NULL COLLATE pg_catalog."C",
    version bigint,
    pull_no integer NOT NULL,
    prev_version bigint,
    pushed bigint
);

ALTER TABLE sync.client_rows OWNER TO postgres;

--
-- Name: clients; Type: TABLE; Schema: sync; Owner: postgres
--

CREATE TABLE sync.clients (
    client_id text NOT NULL,
    user_key text NOT NULL,
    pull_no integer DEFAULT 0 NOT NULL,
    nonce text,
    prev_nonce text,
    epoch integer DEFAULT 0 NOT NULL,
    claims_hash text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    seen_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT clients_client_id_check CHECK (((length(client_id) >= 1) AND (length(client_id) <= 128)))
);

ALTER TABLE sync.clients OWNER TO postgres;

--
-- Name: feed_state; Type: TABLE; Schema: sync; Owner: postgres
--

CREATE TABLE sync.feed_state (
    singleton boolean DEFAULT true NOT NULL,
    epoch integer DEFAULT 0 NOT NULL,
    lsn pg_lsn,
    seq bigint DEFAULT 0 NOT NULL,
    pruned_seq bigint DEFAULT 0 NOT NULL,
    changes_total bigint DEFAULT 0 NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT feed_state_singleton_check CHECK (singleton)
);

ALTER TABLE sync.feed_state OWNER TO postgres;

--
-- Name: mutations; Type: TABLE; Schema: sync; Owner: postgres
--

CREATE TABLE sync.mutations (
    client_id text NOT NULL,
    mutation_id text NOT NULL,
    status integer NOT NULL,
    response jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT mutations_mutation_id_check CHECK (((length(mutation_id) >= 1) AND (length(mutation_id) <= 128)))
);

ALTER TABLE sync.mutations OWNER TO postgres;

--
-- Name: tables; Type: TABLE; Schema: sync; Owner: postgres
--

CREATE TABLE sync.tables (
    id integer NOT NULL,
    relid regclass NOT NULL,
    served boolean DEFAULT true NOT NULL,
    conflict text DEFAULT 'lww'::text NOT NULL,
    resolver regprocedure,
    enabled_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT tables_check CHECK (((conflict = 'custom'::text) = (resolver IS NOT NULL))),
    CONSTRAINT tables_conflict_check CHECK ((conflict = ANY (ARRAY['reject'::text, 'lww'::text, 'merge'::text, 'custom'::text])))
);

ALTER TABLE sync.tables OWNER TO postgres;

--
-- Name: TABLE tables; Type: COMMENT; Schema: sync; Owner: postgres
--

COMMENT ON TABLE sync.tables IS 'Tables in the sync publication, with their push conflict rule.';

--
-- Name: tables_id_seq; Type: SEQUENCE; Schema: sync; Owner: postgres
--

CREATE SEQUENCE sync.tables_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE sync.tables_id_seq OWNER TO postgres;

--
-- Name: tables_id_seq; Type: SEQUENCE OWNED BY; Schema: sync; Owner: postgres
--

ALTER SEQUENCE sync.tables_id_seq OWNED BY sync.tables.id;

--
-- Name: watermelon_pulls; Type: TABLE; Schema: sync; Owner: postgres
--

CREATE TABLE sync.watermelon_pulls (
    id bigint NOT NULL,
    client_id text NOT NULL,
    cursor text,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE sync.watermelon_pulls OWNER TO postgres;

--
-- Name: TABLE watermelon_pulls; Type: COMMENT; Schema: sync; Owner: postgres
--

COMMENT ON TABLE sync.watermelon_pulls IS 'WatermelonDB timestamps (ids) -> sync engine client and cursor.';

--
-- Name: watermelon_pulls_id_seq; Type: SEQUENCE; Schema: sync; Owner: postgres
--

ALTER TABLE sync.watermelon_pulls ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME sync.watermelon_pulls_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: heartbeats; Type: TABLE; Schema: tuskbase; Owner: postgres
--

CREATE TABLE tuskbase.heartbeats (
    name text NOT NULL,
    beat_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE tuskbase.heartbeats OWNER TO postgres;

--
-- Name: TABLE heartbeats; Type: COMMENT; Schema: tuskbase; Owner: postgres
--

COMMENT ON TABLE tuskbase.heartbeats IS 'Liveness marks written by workers; the test broker round trip uses it.';

--
-- Name: persisted_queries; Type: TABLE; Schema: tuskbase; Owner: postgres
--

CREATE TABLE tuskbase.persisted_queries (
    name text NOT NULL,
    hash text NOT NULL,
    method text DEFAULT 'GET'::text NOT NULL,
    path text NOT NULL,
    query text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT persisted_queries_method_check CHECK ((method = ANY (ARRAY['GET'::text, 'HEAD'::text]))),
    CONSTRAINT persisted_queries_name_check CHECK ((name ~ '^[A-Za-z0-9_.-]{1,100}$'::text)),
    CONSTRAINT persisted_queries_path_check CHECK ((path ~ '^/'::text))
);

ALTER TABLE tuskbase.persisted_queries OWNER TO postgres;

--
-- Name: TABLE persisted_queries; Type: COMMENT; Schema: tuskbase; Owner: postgres
--

COMMENT ON TABLE tuskbase.persisted_queries IS 'REST queries registered by name (service role): GET /rest/v1/persisted/<name or sha256> runs path?query as the caller.';

--
-- Name: schema_migrations; Type: TABLE; Schema: tuskbase; Owner: postgres
--

CREATE TABLE tuskbase.schema_migrations (
    source text NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE tuskbase.schema_migrations OWNER TO postgres;

--
-- Name: tables id; Type: DEFAULT; Schema: sync; Owner: postgres
--

ALTER TABLE ONLY sync.tables ALTER COLUMN id SET DEFAULT nextval('sync.tables_id_seq'::regclass);

--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);

--
-- Name: flow_state flow_state_auth_code_hash_key; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.flow_state
    ADD CONSTRAINT flow_state_auth_code_hash_key UNIQUE (auth_code_hash);

--
-- Name: flow_state flow_state_oauth_state_hash_key; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.flow_state
    ADD CONSTRAINT flow_state_oauth_state_hash_key UNIQUE (oauth_state_hash);

--
-- Name: flow_state flow_state_pkey; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.flow_state
    ADD CONSTRAINT flow_state_pkey PRIMARY KEY (id);

--
-- Name: identities identities_pkey; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.identities
    ADD CONSTRAINT identities_pkey PRIMARY KEY (id);

--
-- Name: identities identities_provider_provider_id_key; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.identities
    ADD CONSTRAINT identities_provider_provider_id_key UNIQUE (provider, provider_id);

--
-- Name: mail_outbox mail_outbox_pkey; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.mail_outbox
    ADD CONSTRAINT mail_outbox_pkey PRIMARY KEY (id);

--
-- Name: mfa_challenges mfa_challenges_pkey; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.mfa_challenges
    ADD CONSTRAINT mfa_challenges_pkey PRIMARY KEY (id);

--
-- Name: mfa_factors mfa_factors_pkey; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.mfa_factors
    ADD CONSTRAINT mfa_factors_pkey PRIMARY KEY (id);

--
-- Name: one_time_tokens one_time_tokens_pkey; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.one_time_tokens
    ADD CONSTRAINT one_time_tokens_pkey PRIMARY KEY (id);

--
-- Name: rate_limits rate_limits_pkey; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.rate_limits
    ADD CONSTRAINT rate_limits_pkey PRIMARY KEY (bucket, key);

--
-- Name: refresh_tokens refresh_tokens_pkey; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.refresh_tokens
    ADD CONSTRAINT refresh_tokens_pkey PRIMARY KEY (id);

--
-- Name: refresh_tokens refresh_tokens_token_hash_key; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.refresh_tokens
    ADD CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash);

--
-- Name: sessions sessions_pkey; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.sessions
    ADD CONSTRAINT sessions_pkey PRIMARY KEY (id);

--
-- Name: sms_outbox sms_outbox_pkey; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.sms_outbox
    ADD CONSTRAINT sms_outbox_pkey PRIMARY KEY (id);

--
-- Name: users users_pkey; Type: CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

--
-- Name: queue queue_pkey; Type: CONSTRAINT; Schema: dramatiq; Owner: postgres
--

ALTER TABLE ONLY dramatiq.queue
    ADD CONSTRAINT queue_pkey PRIMARY KEY (message_id);

--
-- Name: result result_pkey; Type: CONSTRAINT; Schema: dramatiq; Owner: postgres
--

ALTER TABLE ONLY dramatiq.result
    ADD CONSTRAINT result_pkey PRIMARY KEY (message_id);

--
-- Name: worker worker_pkey; Type: CONSTRAINT; Schema: dramatiq; Owner: postgres
--

ALTER TABLE ONLY dramatiq.worker
    ADD CONSTRAINT worker_pkey PRIMARY KEY (worker_id);

--
-- Name: changes changes_pkey; Type: CONSTRAINT; Schema: sync; Owner: postgres
--

ALTER TABLE ONLY sync.changes
    ADD CONSTRAINT changes_pkey PRIMARY KEY (seq);

--
-- Name: client_rows client_rows_pkey; Type: CONSTRAINT; Schema: sync; Owner: postgres
--

ALTER TABLE ONLY sync.client_rows
    ADD CONSTRAINT client_rows_pkey PRIMARY KEY (client_id, tbl, key);

--
-- Name: clients clients_pkey; Type: CONSTRAINT; Schema: sync; Owner: postgres
--

ALTER TABLE ONLY sync.clients
    ADD CONSTRAINT clients_pkey PRIMARY KEY (client_id);

--
-- Name: feed_state feed_state_pkey; Type: CONSTRAINT; Schema: sync; Owner: postgres
--

ALTER TABLE ONLY sync.feed_state
    ADD CONSTRAINT feed_state_pkey PRIMARY KEY (singleton);

--
-- Name: mutations mutations_pkey; Type: CONSTRAINT; Schema: sync; Owner: postgres
--

ALTER TABLE ONLY sync.mutations
    ADD CONSTRAINT mutations_pkey PRIMARY KEY (client_id, mutation_id);

--
-- Name: tables tables_pkey; Type: CONSTRAINT; Schema: sync; Owner: postgres
--

ALTER TABLE ONLY sync.tables
    ADD CONSTRAINT tables_pkey PRIMARY KEY (id);

--
-- Name: tables tables_relid_key; Type: CONSTRAINT; Schema: sync; Owner: postgres
--

ALTER TABLE ONLY sync.tables
    ADD CONSTRAINT tables_relid_key UNIQUE (relid);

--
-- Name: watermelon_pulls watermelon_pulls_pkey; Type: CONSTRAINT; Schema: sync; Owner: postgres
--

ALTER TABLE ONLY sync.watermelon_pulls
    ADD CONSTRAINT watermelon_pulls_pkey PRIMARY KEY (id);

--
-- Name: heartbeats heartbeats_pkey; Type: CONSTRAINT; Schema: tuskbase; Owner: postgres
--

ALTER TABLE ONLY tuskbase.heartbeats
    ADD CONSTRAINT heartbeats_pkey PRIMARY KEY (name);

--
-- Name: persisted_queries persisted_queries_hash_key; Type: CONSTRAINT; Schema: tuskbase; Owner: postgres
--

ALTER TABLE ONLY tuskbase.persisted_queries
    ADD CONSTRAINT persisted_queries_hash_key UNIQUE (hash);

--
-- Name: persisted_queries persisted_queries_pkey; Type: CONSTRAINT; Schema: tuskbase; Owner: postgres
--

ALTER TABLE ONLY tuskbase.persisted_queries
    ADD CONSTRAINT persisted_queries_pkey PRIMARY KEY (name);

--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: tuskbase; Owner: postgres
--

ALTER TABLE ONLY tuskbase.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (source, name);

--
-- Name: audit_log_user_id; Type: INDEX; Schema: auth; Owner: postgres
--

CREATE INDEX audit_log_user_id ON auth.audit_log USING btree (user_id, created_at);

--
-- Name: identities_user_id; Type: INDEX; Schema: auth; Owner: postgres
--

CREATE INDEX identities_user_id ON auth.identities USING btree (user_id);

--
-- Name: mfa_challenges_factor_id; Type: INDEX; Schema: auth; Owner: postgres
--

CREATE INDEX mfa_challenges_factor_id ON auth.mfa_challenges USING btree (factor_id);

--
-- Name: mfa_factors_user_friendly_name; Type: INDEX; Schema: auth; Owner: postgres
--

CREATE UNIQUE INDEX mfa_factors_user_friendly_name ON auth.mfa_factors USING btree (user_id, friendly_name) WHERE ((friendly_name IS NOT NULL) AND (friendly_name <> ''::text));

--
-- Name: mfa_factors_user_id; Type: INDEX; Schema: auth; Owner: postgres
--

CREATE INDEX mfa_factors_user_id ON auth.mfa_factors USING btree (user_id);

--
-- Name: one_time_tokens_hash; Type: INDEX; Schema: auth; Owner: postgres
--

CREATE INDEX one_time_tokens_hash ON auth.one_time_tokens USING btree (token_hash);

--
-- Name: one_time_tokens_user_type; Type: INDEX; Schema: auth; Owner: postgres
--

CREATE UNIQUE INDEX one_time_tokens_user_type ON auth.one_time_tokens USING btree (user_id, token_type);

--
-- Name: refresh_tokens_session_id; Type: INDEX; Schema: auth; Owner: postgres
--

CREATE INDEX refresh_tokens_session_id ON auth.refresh_tokens USING btree (session_id);

--
-- Name: sessions_user_id; Type: INDEX; Schema: auth; Owner: postgres
--

CREATE INDEX sessions_user_id ON auth.sessions USING btree (user_id);

--
-- Name: users_email_key; Type: INDEX; Schema: auth; Owner: postgres
--

CREATE UNIQUE INDEX users_email_key ON auth.users USING btree (email) WHERE ((email IS NOT NULL) AND (deleted_at IS NULL));

--
-- Name: users_phone_key; Type: INDEX; Schema: auth; Owner: postgres
--

CREATE UNIQUE INDEX users_phone_key ON auth.users USING btree (phone) WHERE ((phone IS NOT NULL) AND (deleted_at IS NULL));

--
-- Name: queue_queue_name_available_at_position_idx; Type: INDEX; Schema: dramatiq; Owner: postgres
--

CREATE INDEX queue_queue_name_available_at_position_idx ON dramatiq.queue USING btree (queue_name, available_at, "position") WHERE (state = 'queued'::dramatiq.state);

--
-- Name: queue_state_mtime_idx; Type: INDEX; Schema: dramatiq; Owner: postgres
--

CREATE INDEX queue_state_mtime_idx ON dramatiq.queue USING btree (state, mtime);

--
-- Name: changes_xid; Type: INDEX; Schema: sync; Owner: postgres
--

CREATE INDEX changes_xid ON sync.changes USING btree (xid);

--
-- Name: sync_clients_user_key; Type: INDEX; Schema: sync; Owner: postgres
--

CREATE INDEX sync_clients_user_key ON sync.clients USING btree (user_key);

--
-- Name: watermelon_pulls_client; Type: INDEX; Schema: sync; Owner: postgres
--

CREATE INDEX watermelon_pulls_client ON sync.watermelon_pulls USING btree (client_id, id);

--
-- Name: client_rows client_rows_have_clients; Type: TRIGGER; Schema: sync; Owner: postgres
--

CREATE TRIGGER client_rows_have_clients AFTER INSERT ON sync.client_rows REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION sync.client_rows_have_clients();

--
-- Name: client_rows client_rows_keep_client; Type: TRIGGER; Schema: sync; Owner: postgres
--

CREATE TRIGGER client_rows_keep_client BEFORE UPDATE OF client_id ON sync.client_rows FOR EACH ROW WHEN ((old.client_id IS DISTINCT FROM new.client_id)) EXECUTE FUNCTION sync.client_rows_keep_client();

--
-- Name: clients clients_drop_rows; Type: TRIGGER; Schema: sync; Owner: postgres
--

CREATE TRIGGER clients_drop_rows AFTER DELETE ON sync.clients REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION sync.clients_drop_rows();

--
-- Name: flow_state flow_state_user_id_fkey; Type: FK CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.flow_state
    ADD CONSTRAINT flow_state_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE;

--
-- Name: identities identities_user_id_fkey; Type: FK CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.identities
    ADD CONSTRAINT identities_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE;

--
-- Name: mfa_challenges mfa_challenges_factor_id_fkey; Type: FK CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.mfa_challenges
    ADD CONSTRAINT mfa_challenges_factor_id_fkey FOREIGN KEY (factor_id) REFERENCES auth.mfa_factors(id) ON DELETE CASCADE;

--
-- Name: mfa_factors mfa_factors_user_id_fkey; Type: FK CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.mfa_factors
    ADD CONSTRAINT mfa_factors_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE;

--
-- Name: one_time_tokens one_time_tokens_user_id_fkey; Type: FK CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.one_time_tokens
    ADD CONSTRAINT one_time_tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE;

--
-- Name: refresh_tokens refresh_tokens_parent_id_fkey; Type: FK CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.refresh_tokens
    ADD CONSTRAINT refresh_tokens_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES auth.refresh_tokens(id) ON DELETE SET NULL;

--
-- Name: refresh_tokens refresh_tokens_session_id_fkey; Type: FK CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.refresh_tokens
    ADD CONSTRAINT refresh_tokens_session_id_fkey FOREIGN KEY (session_id) REFERENCES auth.sessions(id) ON DELETE CASCADE;

--
-- Name: refresh_tokens refresh_tokens_user_id_fkey; Type: FK CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.refresh_tokens
    ADD CONSTRAINT refresh_tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE;

--
-- Name: sessions sessions_user_id_fkey; Type: FK CONSTRAINT; Schema: auth; Owner: postgres
--

ALTER TABLE ONLY auth.sessions
    ADD CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES auth.users(id) ON DELETE CASCADE;

--
-- Name: mutations mutations_client_id_fkey; Type: FK CONSTRAINT; Schema: sync; Owner: postgres
--

ALTER TABLE ONLY sync.mutations
    ADD CONSTRAINT mutations_client_id_fkey FOREIGN KEY (client_id) REFERENCES sync.clients(client_id) ON DELETE CASCADE;

--
-- Name: watermelon_pulls watermelon_pulls_client_id_fkey; Type: FK CONSTRAINT; Schema: sync; Owner: postgres
--

ALTER TABLE ONLY sync.watermelon_pulls
    ADD CONSTRAINT watermelon_pulls_client_id_fkey FOREIGN KEY (client_id) REFERENCES sync.clients(client_id) ON DELETE CASCADE;

--
-- Name: tuskbase_sync; Type: PUBLICATION; Schema: -; Owner: postgres
--

CREATE PUBLICATION tuskbase_sync WITH (publish = 'insert, update, delete, truncate');

ALTER PUBLICATION tuskbase_sync OWNER TO postgres;

--
-- Name: SCHEMA auth; Type: ACL; Schema: -; Owner: postgres
--

GRANT USAGE ON SCHEMA auth TO anon;
GRANT USAGE ON SCHEMA auth TO authenticated;
GRANT USAGE ON SCHEMA auth TO service_role;
GRANT USAGE ON SCHEMA auth TO tuskbase_auth;

--
-- Name: SCHEMA extensions; Type: ACL; Schema: -; Owner: postgres
--

GRANT USAGE ON SCHEMA extensions TO anon;
GRANT USAGE ON SCHEMA extensions TO authenticated;
GRANT USAGE ON SCHEMA extensions TO service_role;

--
-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: pg_database_owner
--

GRANT USAGE ON SCHEMA public TO anon;
GRANT USAGE ON SCHEMA public TO authenticated;
GRANT USAGE ON SCHEMA public TO service_role;

--
-- Name: SCHEMA sync; Type: ACL; Schema: -; Owner: postgres
--

GRANT USAGE ON SCHEMA sync TO service_role;
GRANT USAGE ON SCHEMA sync TO authenticator;

--
-- Name: SCHEMA tuskbase; Type: ACL; Schema: -; Owner: postgres
--

GRANT USAGE ON SCHEMA tuskbase TO authenticator;

--
-- Name: FUNCTION cleanup(rate_window interval, token_lifetime interval, keep_revoked interval); Type: ACL; Schema: auth; Owner: postgres
--

REVOKE ALL ON FUNCTION auth.cleanup(rate_window interval, token_lifetime interval, keep_revoked interval) FROM PUBLIC;
GRANT ALL ON FUNCTION auth.cleanup(rate_window interval, token_lifetime interval, keep_revoked interval) TO tuskbase_auth;

--
-- Name: FUNCTION email(); Type: ACL; Schema: auth; Owner: postgres
--

GRANT ALL ON FUNCTION auth.email() TO anon;
GRANT ALL ON FUNCTION auth.email() TO authenticated;
GRANT ALL ON FUNCTION auth.email() TO service_role;

--
-- Name: FUNCTION jwt(); Type: ACL; Schema: auth; Owner: postgres
--

GRANT ALL ON FUNCTION auth.jwt() TO anon;
GRANT ALL ON FUNCTION auth.jwt() TO authenticated;
GRANT ALL ON FUNCTION auth.jwt() TO service_role;

--
-- Name: FUNCTION role(); Type: ACL; Schema: auth; Owner: postgres
--

GRANT ALL ON FUNCTION auth.role() TO anon;
GRANT ALL ON FUNCTION auth.role() TO authenticated;
GRANT ALL ON FUNCTION auth.role() TO service_role;

--
-- Name: FUNCTION session_is_active(); Type: ACL; Schema: auth; Owner: postgres
--

REVOKE ALL ON FUNCTION auth.session_is_active() FROM PUBLIC;
GRANT ALL ON FUNCTION auth.session_is_active() TO anon;
GRANT ALL ON FUNCTION auth.session_is_active() TO authenticated;
GRANT ALL ON FUNCTION auth.session_is_active() TO service_role;

--
-- Name: FUNCTION uid(); Type: ACL; Schema: auth; Owner: postgres
--

GRANT ALL ON FUNCTION auth.uid() TO anon;
GRANT ALL ON FUNCTION auth.uid() TO authenticated;
GRANT ALL ON FUNCTION auth.uid() TO service_role;

--
-- Name: FUNCTION client_state(client text); Type: ACL; Schema: sync; Owner: postgres
--

REVOKE ALL ON FUNCTION sync.client_state(client text) FROM PUBLIC;
GRANT ALL ON FUNCTION sync.client_state(client text) TO authenticator;

--
-- Name: FUNCTION disable(target regclass); Type: ACL; Schema: sync; Owner: postgres
--

REVOKE ALL ON FUNCTION sync.disable(target regclass) FROM PUBLIC;

--
-- Name: FUNCTION enable(target regclass, conflict text, served boolean); Type: ACL; Schema: sync; Owner: postgres
--

REVOKE ALL ON FUNCTION sync.enable(target regclass, conflict text, served boolean) FROM PUBLIC;

--
-- Name: FUNCTION live_audience(request_role text, claims text[], tables regclass[], keys jsonb[]); Type: ACL; Schema: sync; Owner: postgres
--

REVOKE ALL ON FUNCTION sync.live_audience(request_role text, claims text[], tables regclass[], keys jsonb[]) FROM PUBLIC;
GRANT ALL ON FUNCTION sync.live_audience(request_role text, claims text[], tables regclass[], keys jsonb[]) TO authenticator;

--
-- Name: TABLE audit_log; Type: ACL; Schema: auth; Owner: postgres
--

GRANT SELECT,INSERT,DELETE ON TABLE auth.audit_log TO tuskbase_auth;

--
-- Name: TABLE flow_state; Type: ACL; Schema: auth; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE auth.flow_state TO tuskbase_auth;

--
-- Name: TABLE identities; Type: ACL; Schema: auth; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE auth.identities TO tuskbase_auth;

--
-- Name: TABLE mail_outbox; Type: ACL; Schema: auth; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE auth.mail_outbox TO tuskbase_auth;

--
-- Name: TABLE mfa_challenges; Type: ACL; Schema: auth; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE auth.mfa_challenges TO tuskbase_auth;

--
-- Name: TABLE mfa_factors; Type: ACL; Schema: auth; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE auth.mfa_factors TO tuskbase_auth;

--
-- Name: TABLE one_time_tokens; Type: ACL; Schema: auth; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE auth.one_time_tokens TO tuskbase_auth;

--
-- Name: TABLE rate_limits; Type: ACL; Schema: auth; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE auth.rate_limits TO tuskbase_auth;

--
-- Name: TABLE refresh_tokens; Type: ACL; Schema: auth; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE auth.refresh_tokens TO tuskbase_auth;

--
-- Name: TABLE sessions; Type: ACL; Schema: auth; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE auth.sessions TO tuskbase_auth;

--
-- Name: TABLE sms_outbox; Type: ACL; Schema: auth; Owner: postgres
--

GRANT SELECT,INSERT,DELETE ON TABLE auth.sms_outbox TO tuskbase_auth;

--
-- Name: TABLE users; Type: ACL; Schema: auth; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE auth.users TO tuskbase_auth;

--
-- Name: TABLE changes; Type: ACL; Schema: sync; Owner: postgres
--

GRANT SELECT ON TABLE sync.changes TO service_role;

--
-- Name: TABLE client_rows; Type: ACL; Schema: sync; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE sync.client_rows TO service_role;

--
-- Name: TABLE clients; Type: ACL; Schema: sync; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE sync.clients TO service_role;

--
-- Name: TABLE feed_state; Type: ACL; Schema: sync; Owner: postgres
--

GRANT SELECT ON TABLE sync.feed_state TO service_role;

--
-- Name: TABLE mutations; Type: ACL; Schema: sync; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE sync.mutations TO service_role;

--
-- Name: TABLE tables; Type: ACL; Schema: sync; Owner: postgres
--

GRANT SELECT ON TABLE sync.tables TO service_role;

--
-- Name: TABLE watermelon_pulls; Type: ACL; Schema: sync; Owner: postgres
--

GRANT SELECT,INSERT,DELETE ON TABLE sync.watermelon_pulls TO service_role;

--
-- Name: TABLE heartbeats; Type: ACL; Schema: tuskbase; Owner: postgres
--

GRANT SELECT ON TABLE tuskbase.heartbeats TO service_role;

--
-- Name: TABLE persisted_queries; Type: ACL; Schema: tuskbase; Owner: postgres
--

GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE tuskbase.persisted_queries TO authenticator;

--
-- Name: TABLE schema_migrations; Type: ACL; Schema: tuskbase; Owner: postgres
--

GRANT SELECT ON TABLE tuskbase.schema_migrations TO authenticator;

--
-- Name: DEFAULT PRIVILEGES FOR SEQUENCES; Type: DEFAULT ACL; Schema: public; Owner: postgres
--

ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON SEQUENCES TO service_role;

--
-- Name: DEFAULT PRIVILEGES FOR FUNCTIONS; Type: DEFAULT ACL; Schema: public; Owner: postgres
--

ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON FUNCTIONS TO service_role;

--
-- Name: DEFAULT PRIVILEGES FOR TABLES; Type: DEFAULT ACL; Schema: public; Owner: postgres
--

ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO service_role;

--
-- Name: tuskbase_schema_ddl; Type: EVENT TRIGGER; Schema: -; Owner: postgres
--

CREATE EVENT TRIGGER tuskbase_schema_ddl ON ddl_command_end
   EXECUTE FUNCTION tuskbase.notify_schema_change();

ALTER EVENT TRIGGER tuskbase_schema_ddl OWNER TO postgres;

--
-- Name: tuskbase_schema_drop; Type: EVENT TRIGGER; Schema: -; Owner: postgres
--

CREATE EVENT TRIGGER tuskbase_schema_drop ON sql_drop
   EXECUTE FUNCTION tuskbase.notify_schema_change();

ALTER EVENT TRIGGER tuskbase_schema_drop OWNER TO postgres;

--
-- PostgreSQL database dump complete
--
