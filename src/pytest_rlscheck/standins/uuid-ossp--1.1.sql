-- pytest-rlscheck stand-in for contrib/uuid-ossp 1.1, written in SQL and PL/pgSQL.
-- Same functions, argument names, volatility and strictness as the C extension.
-- uuid_generate_v3/v5 follow RFC 4122 exactly (MD5 from core, SHA-1 written out below);
-- v1/v1mc carry the current time but a node that is not this machine's MAC address;
-- v4 is core's gen_random_uuid().

\echo Use "CREATE EXTENSION ""uuid-ossp""" to load this file. \quit

CREATE FUNCTION uuid_nil() RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT '00000000-0000-0000-0000-000000000000'::pg_catalog.uuid $$;

CREATE FUNCTION uuid_ns_dns() RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT '6ba7b810-9dad-11d1-80b4-00c04fd430c8'::pg_catalog.uuid $$;

CREATE FUNCTION uuid_ns_url() RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT '6ba7b811-9dad-11d1-80b4-00c04fd430c8'::pg_catalog.uuid $$;

CREATE FUNCTION uuid_ns_oid() RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT '6ba7b812-9dad-11d1-80b4-00c04fd430c8'::pg_catalog.uuid $$;

CREATE FUNCTION uuid_ns_x500() RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT '6ba7b814-9dad-11d1-80b4-00c04fd430c8'::pg_catalog.uuid $$;

-- Time-based UUID: 100 ns ticks since 1582-10-15, a random clock sequence, and a node
-- made from this cluster's system identifier (multicast bit set, as RFC 4122 asks of
-- a node that is not a real MAC address).
CREATE FUNCTION uuid_generate_v1() RETURNS uuid
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
AS $$
DECLARE
  ticks bigint := (extract(epoch FROM pg_catalog.clock_timestamp()) * 10000000)::bigint
                  + 122192928000000000;
  seq int := (pg_catalog.random() * 16383)::int | 32768;
  node bytea := substring(
    pg_catalog.decode(pg_catalog.md5((SELECT system_identifier::text FROM pg_catalog.pg_control_system())), 'hex')
    FROM 1 FOR 6);
BEGIN
  node := pg_catalog.set_byte(node, 0, pg_catalog.get_byte(node, 0) | 1);
  RETURN (pg_catalog.lpad(pg_catalog.to_hex(ticks & 4294967295), 8, '0')
       || pg_catalog.lpad(pg_catalog.to_hex((ticks >> 32) & 65535), 4, '0')
       || pg_catalog.lpad(pg_catalog.to_hex(((ticks >> 48) & 4095) | 4096), 4, '0')
       || pg_catalog.lpad(pg_catalog.to_hex(seq), 4, '0')
       || pg_catalog.encode(node, 'hex'))::pg_catalog.uuid;
END
$$;

-- As v1, with a random multicast node each call (what the C version does too).
CREATE FUNCTION uuid_generate_v1mc() RETURNS uuid
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
AS $$
DECLARE
  ticks bigint := (extract(epoch FROM pg_catalog.clock_timestamp()) * 10000000)::bigint
                  + 122192928000000000;
  seq int := (pg_catalog.random() * 16383)::int | 32768;
  node bytea := substring(pg_catalog.uuid_send(pg_catalog.gen_random_uuid()) FROM 1 FOR 6);
BEGIN
  node := pg_catalog.set_byte(node, 0, pg_catalog.get_byte(node, 0) | 1);
  RETURN (pg_catalog.lpad(pg_catalog.to_hex(ticks & 4294967295), 8, '0')
       || pg_catalog.lpad(pg_catalog.to_hex((ticks >> 32) & 65535), 4, '0')
       || pg_catalog.lpad(pg_catalog.to_hex(((ticks >> 48) & 4095) | 4096), 4, '0')
       || pg_catalog.lpad(pg_catalog.to_hex(seq), 4, '0')
       || pg_catalog.encode(node, 'hex'))::pg_catalog.uuid;
END
$$;

-- Name-based, MD5 (RFC 4122 section 4.3).
CREATE FUNCTION uuid_generate_v3(namespace uuid, name text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
  SELECT pg_catalog.encode(
           pg_catalog.set_byte(
             pg_catalog.set_byte(h, 6, (pg_catalog.get_byte(h, 6) & 15) | 48),
             8, (pg_catalog.get_byte(h, 8) & 63) | 128),
           'hex')::pg_catalog.uuid
  FROM (SELECT pg_catalog.decode(pg_catalog.md5(pg_catalog.uuid_send(namespace)
                                 || pg_catalog.convert_to(name, 'UTF8')), 'hex') AS h) AS d
$$;

CREATE FUNCTION uuid_generate_v4() RETURNS uuid
LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.gen_random_uuid() $$;

-- Name-based, SHA-1 (RFC 4122 section 4.3); SHA-1 (FIPS 180-4) is computed here, on
-- 32-bit words held in bigint.
CREATE FUNCTION uuid_generate_v5(namespace uuid, name text) RETURNS uuid
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
  m32 constant bigint := 4294967295;
  msg bytea := pg_catalog.uuid_send(namespace) || pg_catalog.convert_to(name, 'UTF8');
  h0 bigint := 1732584193;
  h1 bigint := 4023233417;
  h2 bigint := 2562383102;
  h3 bigint := 271733878;
  h4 bigint := 3285377520;
  w bigint[];
  a bigint; b bigint; c bigint; d bigint; e bigint; f bigint; k bigint; t bigint;
  blk int;
  i int;
  digest bytea;
BEGIN
  msg := msg || '\x80'::bytea
         || pg_catalog.decode(pg_catalog.repeat('00', (119 - pg_catalog.length(msg) % 64) % 64), 'hex')
         || pg_catalog.int8send(pg_catalog.length(msg)::bigint * 8);
  FOR blk IN 0 .. pg_catalog.length(msg) / 64 - 1 LOOP
    w := pg_catalog.array_fill(0::bigint, ARRAY[80], ARRAY[0]);
    FOR i IN 0 .. 15 LOOP
      w[i] := (pg_catalog.get_byte(msg, blk * 64 + i * 4)::bigint << 24)
            | (pg_catalog.get_byte(msg, blk * 64 + i * 4 + 1)::bigint << 16)
            | (pg_catalog.get_byte(msg, blk * 64 + i * 4 + 2)::bigint << 8)
            | pg_catalog.get_byte(msg, blk * 64 + i * 4 + 3)::bigint;
    END LOOP;
    FOR i IN 16 .. 79 LOOP
      t := w[i - 3] # w[i - 8] # w[i - 14] # w[i - 16];
      w[i] := ((t << 1) | (t >> 31)) & m32;
    END LOOP;
    a := h0; b := h1; c := h2; d := h3; e := h4;
    FOR i IN 0 .. 79 LOOP
      IF i < 20 THEN
        f := (b & c) | ((~b) & d); k := 1518500249;
      ELSIF i < 40 THEN
        f := b # c # d; k := 1859775393;
      ELSIF i < 60 THEN
        f := (b & c) | (b & d) | (c & d); k := 2400959708;
      ELSE
        f := b # c # d; k := 3395469782;
      END IF;
      t := ((((a << 5) | (a >> 27)) & m32) + f + e + k + w[i]) & m32;
      e := d; d := c; c := ((b << 30) | (b >> 2)) & m32; b := a; a := t;
    END LOOP;
    h0 := (h0 + a) & m32; h1 := (h1 + b) & m32; h2 := (h2 + c) & m32;
    h3 := (h3 + d) & m32; h4 := (h4 + e) & m32;
  END LOOP;
  digest := substring(pg_catalog.int8send(h0) FROM 5) || substring(pg_catalog.int8send(h1) FROM 5)
         || substring(pg_catalog.int8send(h2) FROM 5) || substring(pg_catalog.int8send(h3) FROM 5);
  digest := pg_catalog.set_byte(digest, 6, (pg_catalog.get_byte(digest, 6) & 15) | 80);
  digest := pg_catalog.set_byte(digest, 8, (pg_catalog.get_byte(digest, 8) & 63) | 128);
  RETURN pg_catalog.encode(digest, 'hex')::pg_catalog.uuid;
END
$$;
