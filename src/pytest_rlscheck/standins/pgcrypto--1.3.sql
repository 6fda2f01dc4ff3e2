-- pytest-rlscheck stand-in for contrib/pgcrypto 1.3, for servers built without OpenSSL.
-- Same function names, argument types, volatility and strictness as the C extension.
-- Exact: digest() and hmac() for md5, sha1, sha224, sha256, sha384 and sha512 (SHA-1 is
-- written out here, the others are core functions); armor()/dearmor() (RFC 4880 armor
-- with CRC-24); gen_random_bytes(); gen_random_uuid().
-- Simulated: crypt()/gen_salt() produce hashes of the right shape ('$2a$06$' + 53
-- characters for bf, '$1$' for md5, '_' for xdes, 2+11 characters for des) and
-- crypt(pw, hash) = hash exactly when pw is the password, but the hash is a salted,
-- iterated SHA-256, not bcrypt/md5-crypt/DES: real pgcrypto or GoTrue will not accept
-- them. encrypt()/decrypt() and pgp_sym_encrypt()/pgp_sym_decrypt() round-trip with a
-- SHA-256 keystream (and, for pgp_sym_*, a MAC, so a wrong password fails as with
-- pgcrypto); they are not AES/Blowfish/OpenPGP. pgp_pub_* raise SQLSTATE 0A000.

-- The real extension is relocatable and so is this one; functions that call one another
-- name the schema they were created in (PostgreSQL does not substitute @extschema@ in a
-- relocatable extension's script, so the DO block below does), and so work under any
-- search_path, including the empty one of SECURITY DEFINER functions.

\echo Use "CREATE EXTENSION pgcrypto" to load this file. \quit

DO $rlscheck$
BEGIN
EXECUTE pg_catalog.replace($script$
CREATE FUNCTION digest(bytea, text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
  alg text := pg_catalog.lower($2);
  msg bytea := $1;
  m32 constant bigint := 4294967295;
  h0 bigint := 1732584193;
  h1 bigint := 4023233417;
  h2 bigint := 2562383102;
  h3 bigint := 271733878;
  h4 bigint := 3285377520;
  w bigint[];
  a bigint; b bigint; c bigint; d bigint; e bigint; f bigint; k bigint; t bigint;
  blk int;
  i int;
BEGIN
  CASE alg
    WHEN 'md5' THEN RETURN pg_catalog.decode(pg_catalog.md5(msg), 'hex');
    WHEN 'sha224' THEN RETURN pg_catalog.sha224(msg);
    WHEN 'sha256' THEN RETURN pg_catalog.sha256(msg);
    WHEN 'sha384' THEN RETURN pg_catalog.sha384(msg);
    WHEN 'sha512' THEN RETURN pg_catalog.sha512(msg);
    WHEN 'sha1' THEN NULL;
    ELSE
      RAISE EXCEPTION 'Cannot use "%": No such hash algorithm', $2 USING ERRCODE = '22023';
  END CASE;
  -- SHA-1 (FIPS 180-4) on 32-bit words held in bigint
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
  RETURN substring(pg_catalog.int8send(h0) FROM 5) || substring(pg_catalog.int8send(h1) FROM 5)
         || substring(pg_catalog.int8send(h2) FROM 5) || substring(pg_catalog.int8send(h3) FROM 5)
         || substring(pg_catalog.int8send(h4) FROM 5);
END
$$;

CREATE FUNCTION digest(text, text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT @extschema@.digest(pg_catalog.textsend($1), $2) $$;

CREATE FUNCTION hmac(bytea, bytea, text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
  blocksize int := CASE pg_catalog.lower($3) WHEN 'sha384' THEN 128 WHEN 'sha512' THEN 128 ELSE 64 END;
  key bytea := $2;
  ipad bytea;
  opad bytea;
  i int;
BEGIN
  IF pg_catalog.length(key) > blocksize THEN
    key := @extschema@.digest(key, $3);
  END IF;
  key := key || pg_catalog.decode(pg_catalog.repeat('00', blocksize - pg_catalog.length(key)), 'hex');
  ipad := key;
  opad := key;
  FOR i IN 0 .. blocksize - 1 LOOP
    ipad := pg_catalog.set_byte(ipad, i, pg_catalog.get_byte(key, i) # 54);
    opad := pg_catalog.set_byte(opad, i, pg_catalog.get_byte(key, i) # 92);
  END LOOP;
  RETURN @extschema@.digest(opad || @extschema@.digest(ipad || $1, $3), $3);
END
$$;

CREATE FUNCTION hmac(text, text, text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT @extschema@.hmac(pg_catalog.textsend($1), pg_catalog.textsend($2), $3) $$;

-- Random bytes from core's gen_random_uuid() (a strong random source), whitened with SHA-256.
CREATE FUNCTION gen_random_bytes(integer) RETURNS bytea
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
AS $$
DECLARE
  out bytea := ''::bytea;
BEGIN
  IF $1 < 1 OR $1 > 1024 THEN
    RAISE EXCEPTION 'Length not in range' USING ERRCODE = '39000';
  END IF;
  WHILE pg_catalog.length(out) < $1 LOOP
    out := out || pg_catalog.sha256(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                                    || pg_catalog.uuid_send(pg_catalog.gen_random_uuid()));
  END LOOP;
  RETURN substring(out FROM 1 FOR $1);
END
$$;

CREATE FUNCTION gen_random_uuid() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$ SELECT pg_catalog.gen_random_uuid() $$;

-- Salts in the shapes pgcrypto makes, from the crypt(3) alphabet.
CREATE FUNCTION gen_salt(text, integer) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
AS $$
DECLARE
  alphabet constant text := './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  bf_alphabet constant text := './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  alg text := pg_catalog.lower($1);
  rounds int := $2;
  r bytea := @extschema@.gen_random_bytes(32);
  s text := '';
  i int;
BEGIN
  CASE alg
    WHEN 'bf' THEN
      IF rounds = 0 THEN rounds := 6; END IF;
      IF rounds < 4 OR rounds > 31 THEN
        RAISE EXCEPTION 'gen_salt: Incorrect number of rounds' USING ERRCODE = '22023';
      END IF;
      FOR i IN 0 .. 20 LOOP
        s := s || substr(bf_alphabet, pg_catalog.get_byte(r, i) % 64 + 1, 1);
      END LOOP;
      -- the last of 22 salt characters carries 2 bits in bcrypt
      s := s || substr('.Oeu', pg_catalog.get_byte(r, 21) % 4 + 1, 1);
      RETURN '$2a$' || pg_catalog.lpad(rounds::text, 2, '0') || '$' || s;
    WHEN 'md5' THEN
      IF rounds <> 0 THEN
        RAISE EXCEPTION 'gen_salt: Incorrect number of rounds' USING ERRCODE = '22023';
      END IF;
      FOR i IN 0 .. 7 LOOP
        s := s || substr(alphabet, pg_catalog.get_byte(r, i) % 64 + 1, 1);
      END LOOP;
      RETURN '$1$' || s;
    WHEN 'xdes' THEN
      IF rounds = 0 THEN rounds := 725; END IF;
      IF rounds < 1 OR rounds > 16777215 OR rounds % 2 = 0 THEN
        RAISE EXCEPTION 'gen_salt: Incorrect number of rounds' USING ERRCODE = '22023';
      END IF;
      FOR i IN 0 .. 3 LOOP
        s := s || substr(alphabet, ((rounds >> (6 * i)) & 63) + 1, 1);
      END LOOP;
      FOR i IN 0 .. 3 LOOP
        s := s || substr(alphabet, pg_catalog.get_byte(r, i) % 64 + 1, 1);
      END LOOP;
      RETURN '_' || s;
    WHEN 'des' THEN
      IF rounds <> 0 THEN
        RAISE EXCEPTION 'gen_salt: Incorrect number of rounds' USING ERRCODE = '22023';
      END IF;
      RETURN substr(alphabet, pg_catalog.get_byte(r, 0) % 64 + 1, 1)
          || substr(alphabet, pg_catalog.get_byte(r, 1) % 64 + 1, 1);
    ELSE
      RAISE EXCEPTION 'gen_salt: Unknown salt algorithm' USING ERRCODE = '22023';
  END CASE;
END
$$;

CREATE FUNCTION gen_salt(text) RETURNS text
LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
AS $$ SELECT @extschema@.gen_salt($1, 0) $$;

-- crypt(password, salt-or-hash): the salt part is read from the front of the second
-- argument, so crypt(pw, crypt(pw, salt)) = crypt(pw, salt). Not bcrypt: the hash part
-- is an iterated SHA-256 of salt and password, written in the crypt(3) alphabet.
CREATE FUNCTION crypt(text, text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
  alphabet constant text := './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  bf_alphabet constant text := './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  pw bytea := pg_catalog.textsend($1);
  prefix text;
  chars text := alphabet;
  n int;
  h bytea;
  s text := '';
  i int;
BEGIN
  IF $2 ~ '^\$2[abxy]\$' THEN
    IF $2 !~ '^\$2[abxy]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{22}' THEN
      RAISE EXCEPTION 'invalid salt' USING ERRCODE = '22023';
    END IF;
    prefix := substr($2, 1, 29);
    pw := substring(pw FROM 1 FOR 72);
    chars := bf_alphabet;
    n := 31;
  ELSIF $2 ~ '^\$1\$' THEN
    prefix := pg_catalog.substring($2, '^\$1\$[^$]{0,8}') || '$';
    n := 22;
  ELSIF $2 ~ '^_' THEN
    IF pg_catalog.length($2) < 9 THEN
      RAISE EXCEPTION 'invalid salt' USING ERRCODE = '22023';
    END IF;
    prefix := substr($2, 1, 9);
    n := 11;
  ELSE
    IF pg_catalog.length($2) < 2 THEN
      RAISE EXCEPTION 'invalid salt' USING ERRCODE = '22023';
    END IF;
    prefix := substr($2, 1, 2);
    pw := substring(pw FROM 1 FOR 8);
    n := 11;
  END IF;
  h := pg_catalog.convert_to(prefix, 'UTF8') || '\x00'::bytea || pw;
  FOR i IN 1 .. 16 LOOP
    h := pg_catalog.sha256(h || pw);
  END LOOP;
  FOR i IN 0 .. n - 1 LOOP
    s := s || substr(chars, pg_catalog.get_byte(h, i) % 64 + 1, 1);
  END LOOP;
  RETURN prefix || s;
END
$$;

-- Raw encryption stand-ins: PKCS#7-padded data XORed with a SHA-256 keystream of key
-- and cipher name. Deterministic like ECB/CBC with a zero IV; not AES or Blowfish.
CREATE FUNCTION encrypt(bytea, bytea, text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
  cipher text := pg_catalog.lower(pg_catalog.split_part(pg_catalog.split_part($3, '/', 1), '-', 1));
  blk int;
  data bytea := $1;
  ks bytea := ''::bytea;
  pad int;
  i int;
BEGIN
  IF cipher NOT IN ('aes', 'rijndael', 'bf', 'blowfish', 'des', '3des', 'cast5') THEN
    RAISE EXCEPTION 'Cannot use "%": No such cipher algorithm', $3 USING ERRCODE = '22023';
  END IF;
  blk := CASE WHEN cipher IN ('aes', 'rijndael') THEN 16 ELSE 8 END;
  IF pg_catalog.strpos(pg_catalog.lower($3), 'pad:none') = 0 THEN
    pad := blk - pg_catalog.length(data) % blk;
    data := data || pg_catalog.decode(pg_catalog.repeat(pg_catalog.lpad(pg_catalog.to_hex(pad), 2, '0'), pad), 'hex');
  END IF;
  WHILE pg_catalog.length(ks) < pg_catalog.length(data) LOOP
    ks := ks || pg_catalog.sha256($2 || pg_catalog.convert_to(cipher, 'UTF8')
                                  || pg_catalog.int4send(pg_catalog.length(ks) / 32));
  END LOOP;
  FOR i IN 0 .. pg_catalog.length(data) - 1 LOOP
    data := pg_catalog.set_byte(data, i, pg_catalog.get_byte(data, i) # pg_catalog.get_byte(ks, i));
  END LOOP;
  RETURN data;
END
$$;

CREATE FUNCTION decrypt(bytea, bytea, text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
  cipher text := pg_catalog.lower(pg_catalog.split_part(pg_catalog.split_part($3, '/', 1), '-', 1));
  data bytea := $1;
  ks bytea := ''::bytea;
  pad int;
  i int;
BEGIN
  IF cipher NOT IN ('aes', 'rijndael', 'bf', 'blowfish', 'des', '3des', 'cast5') THEN
    RAISE EXCEPTION 'Cannot use "%": No such cipher algorithm', $3 USING ERRCODE = '22023';
  END IF;
  WHILE pg_catalog.length(ks) < pg_catalog.length(data) LOOP
    ks := ks || pg_catalog.sha256($2 || pg_catalog.convert_to(cipher, 'UTF8')
                                  || pg_catalog.int4send(pg_catalog.length(ks) / 32));
  END LOOP;
  FOR i IN 0 .. pg_catalog.length(data) - 1 LOOP
    data := pg_catalog.set_byte(data, i, pg_catalog.get_byte(data, i) # pg_catalog.get_byte(ks, i));
  END LOOP;
  IF pg_catalog.strpos(pg_catalog.lower($3), 'pad:none') = 0 THEN
    pad := CASE WHEN pg_catalog.length(data) > 0 THEN pg_catalog.get_byte(data, pg_catalog.length(data) - 1) ELSE 0 END;
    IF pad < 1 OR pad > 16 OR pad > pg_catalog.length(data) THEN
      RAISE EXCEPTION 'decrypt error: Decryption failed' USING ERRCODE = '39000';
    END IF;
    data := substring(data FROM 1 FOR pg_catalog.length(data) - pad);
  END IF;
  RETURN data;
END
$$;

CREATE FUNCTION encrypt_iv(bytea, bytea, bytea, text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT @extschema@.encrypt($1, $2 || $3, $4) $$;

CREATE FUNCTION decrypt_iv(bytea, bytea, bytea, text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT @extschema@.decrypt($1, $2 || $3, $4) $$;

-- PGP symmetric stand-ins. Message: 4 marker bytes, 16 random salt bytes, the data
-- XORed with a keystream of (password, salt), and an HMAC-SHA256 over all of that, so a
-- wrong password or a changed message fails with pgcrypto's error.
CREATE FUNCTION pgp_sym_encrypt_bytea(bytea, text, text) RETURNS bytea
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
AS $$
DECLARE
  salt bytea := @extschema@.gen_random_bytes(16);
  body bytea := '\xc3726c73'::bytea || salt
                || @extschema@.encrypt($1, pg_catalog.textsend($2) || salt, 'aes/pad:none');
BEGIN
  RETURN body || @extschema@.hmac(body, pg_catalog.textsend($2), 'sha256');
END
$$;

CREATE FUNCTION pgp_sym_encrypt_bytea(bytea, text) RETURNS bytea
LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
AS $$ SELECT @extschema@.pgp_sym_encrypt_bytea($1, $2, '') $$;

CREATE FUNCTION pgp_sym_encrypt(text, text, text) RETURNS bytea
LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
AS $$ SELECT @extschema@.pgp_sym_encrypt_bytea(pg_catalog.convert_to($1, 'UTF8'), $2, $3) $$;

CREATE FUNCTION pgp_sym_encrypt(text, text) RETURNS bytea
LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
AS $$ SELECT @extschema@.pgp_sym_encrypt_bytea(pg_catalog.convert_to($1, 'UTF8'), $2, '') $$;

CREATE FUNCTION pgp_sym_decrypt_bytea(bytea, text, text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
  n int := pg_catalog.length($1);
BEGIN
  IF n < 52 OR substring($1 FROM 1 FOR 4) <> '\xc3726c73'::bytea
     OR @extschema@.hmac(substring($1 FROM 1 FOR n - 32), pg_catalog.textsend($2), 'sha256')
        <> substring($1 FROM n - 31) THEN
    RAISE EXCEPTION 'Wrong key or corrupt data' USING ERRCODE = '39000';
  END IF;
  RETURN @extschema@.decrypt(substring($1 FROM 21 FOR n - 52),
                             pg_catalog.textsend($2) || substring($1 FROM 5 FOR 16), 'aes/pad:none');
END
$$;

CREATE FUNCTION pgp_sym_decrypt_bytea(bytea, text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT @extschema@.pgp_sym_decrypt_bytea($1, $2, '') $$;

CREATE FUNCTION pgp_sym_decrypt(bytea, text, text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.convert_from(@extschema@.pgp_sym_decrypt_bytea($1, $2, $3), 'UTF8') $$;

CREATE FUNCTION pgp_sym_decrypt(bytea, text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.convert_from(@extschema@.pgp_sym_decrypt_bytea($1, $2, ''), 'UTF8') $$;

-- Public-key OpenPGP cannot be faithful here.
CREATE FUNCTION pgp_pub_encrypt(text, bytea) RETURNS bytea
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
AS $$ BEGIN RAISE EXCEPTION 'pgp_pub_encrypt is not available: pgcrypto is a stand-in under pytest-rlscheck (no OpenPGP public-key encryption)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION pgp_pub_encrypt(text, bytea, text) RETURNS bytea
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
AS $$ BEGIN RAISE EXCEPTION 'pgp_pub_encrypt is not available: pgcrypto is a stand-in under pytest-rlscheck (no OpenPGP public-key encryption)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION pgp_pub_encrypt_bytea(bytea, bytea) RETURNS bytea
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
AS $$ BEGIN RAISE EXCEPTION 'pgp_pub_encrypt_bytea is not available: pgcrypto is a stand-in under pytest-rlscheck (no OpenPGP public-key encryption)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION pgp_pub_encrypt_bytea(bytea, bytea, text) RETURNS bytea
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
AS $$ BEGIN RAISE EXCEPTION 'pgp_pub_encrypt_bytea is not available: pgcrypto is a stand-in under pytest-rlscheck (no OpenPGP public-key encryption)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION pgp_pub_decrypt(bytea, bytea) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$ BEGIN RAISE EXCEPTION 'pgp_pub_decrypt is not available: pgcrypto is a stand-in under pytest-rlscheck (no OpenPGP public-key encryption)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION pgp_pub_decrypt(bytea, bytea, text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$ BEGIN RAISE EXCEPTION 'pgp_pub_decrypt is not available: pgcrypto is a stand-in under pytest-rlscheck (no OpenPGP public-key encryption)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION pgp_pub_decrypt(bytea, bytea, text, text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$ BEGIN RAISE EXCEPTION 'pgp_pub_decrypt is not available: pgcrypto is a stand-in under pytest-rlscheck (no OpenPGP public-key encryption)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION pgp_pub_decrypt_bytea(bytea, bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$ BEGIN RAISE EXCEPTION 'pgp_pub_decrypt_bytea is not available: pgcrypto is a stand-in under pytest-rlscheck (no OpenPGP public-key encryption)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION pgp_pub_decrypt_bytea(bytea, bytea, text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$ BEGIN RAISE EXCEPTION 'pgp_pub_decrypt_bytea is not available: pgcrypto is a stand-in under pytest-rlscheck (no OpenPGP public-key encryption)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION pgp_pub_decrypt_bytea(bytea, bytea, text, text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$ BEGIN RAISE EXCEPTION 'pgp_pub_decrypt_bytea is not available: pgcrypto is a stand-in under pytest-rlscheck (no OpenPGP public-key encryption)' USING ERRCODE = '0A000'; END $$;

-- 'SYMKEY' for this stand-in's pgp_sym_encrypt output, as pgcrypto says for symmetric messages.
CREATE FUNCTION pgp_key_id(bytea) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
BEGIN
  IF substring($1 FROM 1 FOR 4) = '\xc3726c73'::bytea THEN
    RETURN 'SYMKEY';
  END IF;
  RAISE EXCEPTION 'pgp_key_id is not available for OpenPGP keys: pgcrypto is a stand-in under pytest-rlscheck' USING ERRCODE = '0A000';
END
$$;

-- ASCII armor (RFC 4880 section 6): base64 in 76-character lines and a CRC-24.
CREATE FUNCTION armor(bytea, text[], text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
  crc bigint := 11994318;
  i int;
  j int;
  headers text := '';
BEGIN
  IF pg_catalog.cardinality($2) <> pg_catalog.cardinality($3) THEN
    RAISE EXCEPTION 'mismatched array dimensions' USING ERRCODE = '2202E';
  END IF;
  FOR i IN 1 .. pg_catalog.cardinality($2) LOOP
    headers := headers || $2[i] || ': ' || $3[i] || E'\n';
  END LOOP;
  FOR i IN 0 .. pg_catalog.length($1) - 1 LOOP
    crc := crc # (pg_catalog.get_byte($1, i)::bigint << 16);
    FOR j IN 1 .. 8 LOOP
      crc := crc << 1;
      IF crc & 16777216 <> 0 THEN
        crc := crc # 25578747;
      END IF;
    END LOOP;
  END LOOP;
  crc := crc & 16777215;
  RETURN E'-----BEGIN PGP MESSAGE-----\n' || headers || E'\n'
      || CASE WHEN pg_catalog.length($1) = 0 THEN ''
              ELSE pg_catalog.rtrim(pg_catalog.encode($1, 'base64'), E'\n') || E'\n' END
      || '='
      || pg_catalog.encode(substring(pg_catalog.int4send(crc::int) FROM 2), 'base64')
      || E'\n-----END PGP MESSAGE-----\n';
END
$$;

CREATE FUNCTION armor(bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT @extschema@.armor($1, '{}'::text[], '{}'::text[]) $$;

CREATE FUNCTION dearmor(text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
  m text[] := pg_catalog.regexp_match($1,
    '-----BEGIN PGP [A-Z ]+-----\r?\n(?:[^\r\n]+\r?\n)*?\r?\n([A-Za-z0-9+/=\r\n]*?)\r?\n=([A-Za-z0-9+/]{4})\r?\n-----END PGP ');
  data bytea;
BEGIN
  IF m IS NULL THEN
    RAISE EXCEPTION 'Corrupt ascii-armor' USING ERRCODE = '39000';
  END IF;
  data := pg_catalog.decode(pg_catalog.translate(m[1], E'\r\n', ''), 'base64');
  IF pg_catalog.substr(@extschema@.armor(data), pg_catalog.length(@extschema@.armor(data)) - 30, 4) <> m[2] THEN
    RAISE EXCEPTION 'Corrupt ascii-armor' USING ERRCODE = '39000';
  END IF;
  RETURN data;
END
$$;

CREATE FUNCTION pgp_armor_headers(text, key OUT text, value OUT text) RETURNS SETOF record
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
  SELECT pg_catalog.split_part(h, ': ', 1), substr(h, pg_catalog.strpos(h, ': ') + 2)
  FROM pg_catalog.regexp_split_to_table(
         (pg_catalog.regexp_match($1, '-----BEGIN PGP [A-Z ]+-----\r?\n((?:[^\r\n]+\r?\n)*?)\r?\n'))[1],
         E'\r?\n') AS h
  WHERE h <> ''
$$;
$script$, '@extschema@', pg_catalog.quote_ident(pg_catalog.current_schema()));
END
$rlscheck$;
