-- Tuskbase: pgcrypto's hashing and random functions in SQL, for Postgres builds without pgcrypto.
-- Same names, signatures and results as pgcrypto's; md5 and SHA-2 use the server's built-in functions, SHA-1
-- (which Postgres does not expose) is computed here. crypt() and gen_salt() are not here (bcrypt is too slow in
-- PL/pgSQL): they are appended from tuskbase_crypt.c, over the system's libxcrypt, where it could be built.
\echo Use "CREATE EXTENSION pgcrypto" to load this file. \quit

create function @extschema@.tuskbase_sha1(data bytea) returns bytea
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
  -- Padding: 0x80, zeros up to 56 mod 64, then the bit length as 8 big-endian bytes.
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

create function @extschema@.digest(bytea, text) returns bytea
language plpgsql immutable strict parallel safe
as $$
begin
  case pg_catalog.lower($2)
    when 'md5' then return pg_catalog.decode(pg_catalog.md5($1), 'hex');
    when 'sha1' then return @extschema@.tuskbase_sha1($1);
    when 'sha224' then return pg_catalog.sha224($1);
    when 'sha256' then return pg_catalog.sha256($1);
    when 'sha384' then return pg_catalog.sha384($1);
    when 'sha512' then return pg_catalog.sha512($1);
    else raise exception 'Cannot use "%": No such hash algorithm', $2 using errcode = '39000';
  end case;
end
$$;

create function @extschema@.digest(text, text) returns bytea
language sql immutable strict parallel safe
as $$ select @extschema@.digest(pg_catalog.convert_to($1, pg_catalog.getdatabaseencoding()), $2) $$;

create function @extschema@.hmac(bytea, bytea, text) returns bytea
language plpgsql immutable strict parallel safe
as $$
declare
  block int := case pg_catalog.lower($3) when 'sha384' then 128 when 'sha512' then 128 else 64 end;
  k bytea := $2;
  inner_pad bytea;
  outer_pad bytea;
begin
  if pg_catalog.length(k) > block then
    k := @extschema@.digest(k, $3);
  end if;
  k := k || pg_catalog.decode(pg_catalog.repeat('00', block - pg_catalog.length(k)), 'hex');
  inner_pad := k;
  outer_pad := k;
  for i in 0 .. block - 1 loop
    inner_pad := pg_catalog.set_byte(inner_pad, i, pg_catalog.get_byte(k, i) # 54);  -- 0x36
    outer_pad := pg_catalog.set_byte(outer_pad, i, pg_catalog.get_byte(k, i) # 92);  -- 0x5c
  end loop;
  return @extschema@.digest(outer_pad || @extschema@.digest(inner_pad || $1, $3), $3);
end
$$;

create function @extschema@.hmac(text, text, text) returns bytea
language sql immutable strict parallel safe
as $$
  select @extschema@.hmac(pg_catalog.convert_to($1, pg_catalog.getdatabaseencoding()),
                          pg_catalog.convert_to($2, pg_catalog.getdatabaseencoding()), $3)
$$;

-- Strong random bytes from the server's own CSPRNG (pg_strong_random, behind gen_random_uuid): the 14 bytes of
-- each version-4 UUID that carry no version or variant bits.
create function @extschema@.gen_random_bytes(integer) returns bytea
language plpgsql volatile strict parallel safe
as $$
declare
  result bytea := ''::bytea;
  u bytea;
begin
  if $1 < 1 or $1 > 1024 then
    raise exception 'Length not in range' using errcode = '22023';
  end if;
  while pg_catalog.length(result) < $1 loop
    u := pg_catalog.uuid_send(pg_catalog.gen_random_uuid());
    result := result || pg_catalog.substr(u, 1, 6) || pg_catalog.substr(u, 8, 1) || pg_catalog.substr(u, 10, 7);
  end loop;
  return pg_catalog.substr(result, 1, $1);
end
$$;

create function @extschema@.gen_random_uuid() returns uuid
language sql volatile parallel safe
as $$ select pg_catalog.gen_random_uuid() $$;
