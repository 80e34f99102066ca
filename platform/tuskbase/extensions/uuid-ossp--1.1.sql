-- Tuskbase: uuid-ossp's functions in SQL, for Postgres builds without the uuid library.
-- v3, v4, v5 and the namespaces give exactly uuid-ossp's results. v1 and v1mc are time-based UUIDs whose
-- node is random with the multicast bit set (RFC 4122 4.5), as uuid-ossp's v1mc: this server has no MAC to read.
\echo Use "CREATE EXTENSION \"uuid-ossp\"" to load this file. \quit

create function @extschema@.uuid_nil() returns uuid
language sql immutable parallel safe as $$ select '00000000-0000-0000-0000-000000000000'::uuid $$;

create function @extschema@.uuid_ns_dns() returns uuid
language sql immutable parallel safe as $$ select '6ba7b810-9dad-11d1-80b4-00c04fd430c8'::uuid $$;

create function @extschema@.uuid_ns_url() returns uuid
language sql immutable parallel safe as $$ select '6ba7b811-9dad-11d1-80b4-00c04fd430c8'::uuid $$;

create function @extschema@.uuid_ns_oid() returns uuid
language sql immutable parallel safe as $$ select '6ba7b812-9dad-11d1-80b4-00c04fd430c8'::uuid $$;

create function @extschema@.uuid_ns_x500() returns uuid
language sql immutable parallel safe as $$ select '6ba7b814-9dad-11d1-80b4-00c04fd430c8'::uuid $$;

create function @extschema@.uuid_generate_v4() returns uuid
language sql volatile parallel safe as $$ select pg_catalog.gen_random_uuid() $$;

-- A name-based UUID from a 16+ byte hash: version nibble and RFC 4122 variant bits set.
create function @extschema@.tuskbase_uuid_from_hash(hash bytea, version int) returns uuid
language sql immutable strict parallel safe
as $$
  select pg_catalog.encode(
    pg_catalog.set_byte(
      pg_catalog.set_byte(pg_catalog.substr(hash, 1, 16), 6, (pg_catalog.get_byte(hash, 6) & 15) | (version << 4)),
      8, (pg_catalog.get_byte(hash, 8) & 63) | 128),
    'hex')::uuid
$$;

create function @extschema@.uuid_generate_v3(namespace uuid, name text) returns uuid
language sql immutable strict parallel safe
as $$
  select @extschema@.tuskbase_uuid_from_hash(
    pg_catalog.decode(pg_catalog.md5(pg_catalog.uuid_send(namespace)
                                     || pg_catalog.convert_to(name, pg_catalog.getdatabaseencoding())), 'hex'), 3)
$$;

-- SHA-1 of bytes (the same computation as the pgcrypto stand-in; this extension must not depend on it).
create function @extschema@.tuskbase_uuid_sha1(data bytea) returns bytea
language plpgsql immutable strict parallel safe
as $$
declare
  mask constant bigint := 0xffffffff;
  h0 bigint := 0x67452301;
  h1 bigint := 0xefcdab89;
  h2 bigint := 0x98badcfe;
  h3 bigint := 0x10325476;
  h4 bigint := 0xc3d2e1f0;
  message bytea;
  w bigint[];
  a bigint; b bigint; c bigint; d bigint; e bigint; f bigint; k bigint; t bigint;
  base int;
begin
  message := data || '\x80'::bytea
             || pg_catalog.decode(pg_catalog.repeat('00', (119 - pg_catalog.length(data) % 64) % 64), 'hex')
             || pg_catalog.int8send(pg_catalog.length(data)::bigint * 8);
  for chunk in 0 .. pg_catalog.length(message) / 64 - 1 loop
    base := chunk * 64;
    w := pg_catalog.array_fill(0::bigint, array[80]);
    for i in 0 .. 15 loop
      w[i + 1] := (pg_catalog.get_byte(message, base + i * 4)::bigint << 24)
                | (pg_catalog.get_byte(message, base + i * 4 + 1)::bigint << 16)
                | (pg_catalog.get_byte(message, base + i * 4 + 2)::bigint << 8)
                | pg_catalog.get_byte(message, base + i * 4 + 3)::bigint;
    end loop;
    for i in 16 .. 79 loop
      t := w[i - 2] # w[i - 7] # w[i - 13] # w[i - 15];
      w[i + 1] := ((t << 1) | (t >> 31)) & mask;
    end loop;
    a := h0; b := h1; c := h2; d := h3; e := h4;
    for i in 0 .. 79 loop
      if i < 20 then
        f := (b & c) | ((~b & mask) & d); k := 0x5a827999;
      elsif i < 40 then
        f := b # c # d; k := 0x6ed9eba1;
      elsif i < 60 then
        f := (b & c) | (b & d) | (c & d); k := 0x8f1bbcdc;
      else
        f := b # c # d; k := 0xca62c1d6;
      end if;
      t := ((((a << 5) | (a >> 27)) & mask) + f + e + k + w[i + 1]) & mask;
      e := d;
      d := c;
      c := ((b << 30) | (b >> 2)) & mask;
      b := a;
      a := t;
    end loop;
    h0 := (h0 + a) & mask;
    h1 := (h1 + b) & mask;
    h2 := (h2 + c) & mask;
    h3 := (h3 + d) & mask;
    h4 := (h4 + e) & mask;
  end loop;
  return pg_catalog.substr(pg_catalog.int8send(h0), 5) || pg_catalog.substr(pg_catalog.int8send(h1), 5)
      || pg_catalog.substr(pg_catalog.int8send(h2), 5) || pg_catalog.substr(pg_catalog.int8send(h3), 5)
      || pg_catalog.substr(pg_catalog.int8send(h4), 5);
end
$$;

create function @extschema@.uuid_generate_v5(namespace uuid, name text) returns uuid
language sql immutable strict parallel safe
as $$
  select @extschema@.tuskbase_uuid_from_hash(
    @extschema@.tuskbase_uuid_sha1(pg_catalog.uuid_send(namespace)
                                   || pg_catalog.convert_to(name, pg_catalog.getdatabaseencoding())), 5)
$$;

-- Version 1: 60-bit count of 100 ns since 1582-10-15, a random clock sequence, a random multicast node.
create function @extschema@.uuid_generate_v1mc() returns uuid
language plpgsql volatile parallel safe
as $$
declare
  ticks bigint := pg_catalog.floor(extract(epoch from pg_catalog.clock_timestamp()) * 10000000)::bigint
                  + 122192928000000000;
  random_bytes bytea := pg_catalog.uuid_send(pg_catalog.gen_random_uuid());
  clock_seq int := ((pg_catalog.get_byte(random_bytes, 0) << 8) | pg_catalog.get_byte(random_bytes, 1)) & 16383;
  node bytea := pg_catalog.set_byte(pg_catalog.substr(random_bytes, 10, 6), 0,
                                    pg_catalog.get_byte(random_bytes, 9) | 1);
begin
  return (pg_catalog.lpad(pg_catalog.to_hex(ticks & 0xffffffff), 8, '0')
          || pg_catalog.lpad(pg_catalog.to_hex((ticks >> 32) & 0xffff), 4, '0')
          || pg_catalog.lpad(pg_catalog.to_hex(((ticks >> 48) & 0x0fff) | 0x1000), 4, '0')
          || pg_catalog.lpad(pg_catalog.to_hex(clock_seq | 0x8000), 4, '0')
          || pg_catalog.encode(node, 'hex'))::uuid;
end
$$;

create function @extschema@.uuid_generate_v1() returns uuid
language sql volatile parallel safe as $$ select @extschema@.uuid_generate_v1mc() $$;
