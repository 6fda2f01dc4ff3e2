-- pytest-rlscheck stand-in for pgsodium 3.1.8 (the version on Supabase's PostgreSQL 15
-- images), a subset written in SQL and PL/pgSQL. What it has, with pgsodium's names,
-- argument names, defaults, roles and privileges:
--   roles pgsodium_keyiduser, pgsodium_keyholder, pgsodium_keymaker (created when missing;
--     keyholder and keymaker are members of keyiduser, keymaker of keyholder);
--   types key_status, key_type, crypto_box_keypair, crypto_sign_keypair, crypto_kx_keypair,
--     crypto_kx_session; table pgsodium.key and its sequence, views valid_key and
--     decrypted_key, the trigger that encrypts raw_key; create_key(), get_key_by_id(),
--     get_key_by_name(), get_named_keys(), derive_key(), version();
--   randombytes_buf/_random/_uniform/_new_seed/_buf_deterministic;
--   crypto_aead_det_*, crypto_aead_ietf_*, crypto_secretbox* (keygen, noncegen, encrypt/
--     decrypt by raw key, by key id and context, by key uuid): they round-trip, keep the
--     real sizes, and fail on a wrong key, nonce or associated data, but the cipher is a
--     SHA-256 keystream and MAC, not XChaCha20/ChaCha20-Poly1305/XSalsa20-Poly1305, and
--     keys by id derive from a constant, not a server root key;
--   crypto_auth_hmacsha256/512 (+ _verify, _keygen), crypto_auth (HMAC-SHA-512-256),
--     crypto_hash_sha256/512, sodium_bin2base64/base642bin: exact.
-- Raising SQLSTATE 0A000: crypto_generichash, crypto_shorthash, crypto_pwhash*,
--   crypto_box*, crypto_sign*, crypto_kx*, crypto_kdf_*. Not there at all: the security
--   label provider and transparent column encryption (SECURITY LABEL FOR pgsodium fails),
--   crypto_signcrypt*, crypto_stream_xchacha20*. Two helpers of the stand-in's own,
--   _rlscheck_hmac and _rlscheck_seal, are in the schema, executable by no one but owners.

\echo Use "CREATE EXTENSION pgsodium" to load this file. \quit

DO $rlscheck$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['pgsodium_keyiduser', 'pgsodium_keyholder', 'pgsodium_keymaker'] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
      EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
    END IF;
  END LOOP;
  IF NOT pg_catalog.pg_has_role('pgsodium_keyholder', 'pgsodium_keyiduser', 'MEMBER') THEN
    GRANT pgsodium_keyiduser TO pgsodium_keyholder;
  END IF;
  IF NOT pg_catalog.pg_has_role('pgsodium_keymaker', 'pgsodium_keyiduser', 'MEMBER') THEN
    GRANT pgsodium_keyiduser TO pgsodium_keymaker;
  END IF;
  IF NOT pg_catalog.pg_has_role('pgsodium_keymaker', 'pgsodium_keyholder', 'MEMBER') THEN
    GRANT pgsodium_keyholder TO pgsodium_keymaker;
  END IF;
END
$rlscheck$;

GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;

CREATE TYPE @extschema@.crypto_box_keypair AS (public bytea, secret bytea);
CREATE TYPE @extschema@.crypto_sign_keypair AS (public bytea, secret bytea);
CREATE TYPE @extschema@.crypto_kx_keypair AS (public bytea, secret bytea);
CREATE TYPE @extschema@.crypto_kx_session AS (rx bytea, tx bytea);
CREATE TYPE @extschema@.key_status AS ENUM ('default', 'valid', 'invalid', 'expired');
CREATE TYPE @extschema@.key_type AS ENUM ('aead-ietf', 'aead-det', 'hmacsha512', 'hmacsha256', 'auth',
  'shorthash', 'generichash', 'kdf', 'secretbox', 'secretstream', 'stream_xchacha20');

-- helpers of the stand-in ------------------------------------------------------------

-- HMAC (RFC 2104) over core sha256/sha512.
CREATE FUNCTION @extschema@._rlscheck_hmac(message bytea, key bytea, alg text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT
AS $$
DECLARE
  k bytea := key;
  ipad bytea;
  opad bytea;
  i int;
BEGIN
  IF pg_catalog.length(k) > 128 THEN
    k := CASE alg WHEN 'sha256' THEN pg_catalog.sha256(k) ELSE pg_catalog.sha512(k) END;
  END IF;
  IF alg = 'sha256' AND pg_catalog.length(k) > 64 THEN
    k := pg_catalog.sha256(k);
  END IF;
  k := k || pg_catalog.decode(pg_catalog.repeat('00', (CASE alg WHEN 'sha256' THEN 64 ELSE 128 END) - pg_catalog.length(k)), 'hex');
  ipad := k;
  opad := k;
  FOR i IN 0 .. pg_catalog.length(k) - 1 LOOP
    ipad := pg_catalog.set_byte(ipad, i, pg_catalog.get_byte(k, i) # 54);
    opad := pg_catalog.set_byte(opad, i, pg_catalog.get_byte(k, i) # 92);
  END LOOP;
  IF alg = 'sha256' THEN
    RETURN pg_catalog.sha256(opad || pg_catalog.sha256(ipad || message));
  END IF;
  RETURN pg_catalog.sha512(opad || pg_catalog.sha512(ipad || message));
END
$$;

-- The stand-in cipher: MAC = SHA-256 over key, nonce, associated data and message (cut to
-- maclen bytes), used as the IV of a SHA-256 keystream. Output: ciphertext || MAC.
CREATE FUNCTION @extschema@._rlscheck_seal(message bytea, additional bytea, key bytea, nonce bytea,
                                           maclen int, open boolean, what text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  n int;
  mac bytea;
  ks bytea := ''::bytea;
  out bytea;
  i int;
BEGIN
  IF message IS NULL OR key IS NULL THEN
    RETURN NULL;
  END IF;
  IF pg_catalog.length(key) <> 32 THEN
    RAISE EXCEPTION '%: invalid key', what USING ERRCODE = '22000';
  END IF;
  IF open THEN
    n := pg_catalog.length(message) - maclen;
    IF n < 0 THEN
      RAISE EXCEPTION '%: invalid message', what USING ERRCODE = '22000';
    END IF;
    mac := substring(message FROM n + 1);
    out := substring(message FROM 1 FOR n);
  ELSE
    n := pg_catalog.length(message);
    out := message;
    mac := substring(pg_catalog.sha256(key || '\x01'::bytea || coalesce(nonce, ''::bytea)
             || pg_catalog.int8send(pg_catalog.length(coalesce(additional, ''::bytea)))
             || coalesce(additional, ''::bytea) || message) FROM 1 FOR maclen);
  END IF;
  WHILE pg_catalog.length(ks) < n LOOP
    ks := ks || pg_catalog.sha256(key || '\x02'::bytea || mac || pg_catalog.int4send(pg_catalog.length(ks) / 32));
  END LOOP;
  FOR i IN 0 .. n - 1 LOOP
    out := pg_catalog.set_byte(out, i, pg_catalog.get_byte(out, i) # pg_catalog.get_byte(ks, i));
  END LOOP;
  IF open THEN
    IF substring(pg_catalog.sha256(key || '\x01'::bytea || coalesce(nonce, ''::bytea)
         || pg_catalog.int8send(pg_catalog.length(coalesce(additional, ''::bytea)))
         || coalesce(additional, ''::bytea) || out) FROM 1 FOR maclen) <> mac THEN
      RAISE EXCEPTION '%: invalid ciphertext', what USING ERRCODE = '22000';
    END IF;
    RETURN out;
  END IF;
  RETURN out || mac;
END
$$;

REVOKE ALL ON FUNCTION @extschema@._rlscheck_hmac(bytea, bytea, text),
  @extschema@._rlscheck_seal(bytea, bytea, bytea, bytea, int, boolean, text) FROM PUBLIC;

-- random ------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.randombytes_buf(size integer) RETURNS bytea
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  out bytea := ''::bytea;
BEGIN
  WHILE pg_catalog.length(out) < size LOOP
    out := out || pg_catalog.sha256(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                                    || pg_catalog.uuid_send(pg_catalog.gen_random_uuid()));
  END LOOP;
  RETURN substring(out FROM 1 FOR greatest(size, 0));
END
$$;

CREATE FUNCTION @extschema@.randombytes_random() RETURNS integer
LANGUAGE sql VOLATILE
AS $$ SELECT (('x' || pg_catalog.encode(@extschema@.randombytes_buf(4), 'hex'))::bit(32))::integer $$;

CREATE FUNCTION @extschema@.randombytes_uniform(upper_bound integer) RETURNS integer
LANGUAGE sql VOLATILE
AS $$ SELECT ((('x' || pg_catalog.encode(@extschema@.randombytes_buf(4), 'hex'))::bit(32))::bigint & 4294967295)::numeric
             % upper_bound $$;

CREATE FUNCTION @extschema@.randombytes_new_seed() RETURNS bytea
LANGUAGE sql VOLATILE
AS $$ SELECT @extschema@.randombytes_buf(32) $$;

CREATE FUNCTION @extschema@.randombytes_buf_deterministic(size integer, seed bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  out bytea := ''::bytea;
BEGIN
  WHILE pg_catalog.length(out) < size LOOP
    out := out || pg_catalog.sha256(seed || pg_catalog.int4send(pg_catalog.length(out) / 32));
  END LOOP;
  RETURN substring(out FROM 1 FOR greatest(size, 0));
END
$$;

-- keys by id: derived from a constant standing in for the server's root key
CREATE FUNCTION @extschema@.derive_key(key_id bigint, key_len integer = 32, context bytea = 'pgsodium')
RETURNS bytea
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  out bytea := ''::bytea;
BEGIN
  IF key_len < 16 OR key_len > 64 THEN
    RAISE EXCEPTION 'crypto_kdf_derive_from_key: invalid key size requested' USING ERRCODE = '22000';
  END IF;
  WHILE pg_catalog.length(out) < key_len LOOP
    out := out || pg_catalog.sha256(pg_catalog.convert_to('rlscheck pgsodium stand-in root key', 'UTF8')
                                    || pg_catalog.int8send(key_id) || context
                                    || pg_catalog.int4send(pg_catalog.length(out) / 32));
  END LOOP;
  RETURN substring(out FROM 1 FOR key_len);
END
$$;

CREATE FUNCTION @extschema@.version() RETURNS text
LANGUAGE sql
AS $$ SELECT '3.1.8'::text $$;

CREATE FUNCTION @extschema@.sodium_bin2base64(bin bytea) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT pg_catalog.translate(pg_catalog.encode(bin, 'base64'), E'+/=\n', '-_') $$;

CREATE FUNCTION @extschema@.sodium_base642bin(base64 text) RETURNS bytea
LANGUAGE sql IMMUTABLE
AS $$
  SELECT pg_catalog.decode(b || pg_catalog.repeat('=', (4 - pg_catalog.length(b) % 4) % 4), 'base64')
  FROM (SELECT pg_catalog.translate(base64, '-_', '+/') AS b) AS t
$$;

CREATE FUNCTION @extschema@.crypto_hash_sha256(message bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$ SELECT pg_catalog.sha256(message) $$;
CREATE FUNCTION @extschema@.crypto_hash_sha512(message bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$ SELECT pg_catalog.sha512(message) $$;

-- the key table ----------------------------------------------------------------------

CREATE SEQUENCE @extschema@.key_key_id_seq;

CREATE TABLE @extschema@.key (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  status          @extschema@.key_status DEFAULT 'valid',
  created         timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
  expires         timestamptz,
  key_type        @extschema@.key_type,
  key_id          bigint DEFAULT nextval('@extschema@.key_key_id_seq'::regclass),
  key_context     bytea DEFAULT 'pgsodium'::bytea,
  name            text,
  associated_data text DEFAULT 'associated',
  raw_key         bytea,
  raw_key_nonce   bytea,
  parent_key      uuid,
  comment         text,
  user_data       text
);
ALTER SEQUENCE @extschema@.key_key_id_seq OWNED BY @extschema@.key.key_id;
CREATE UNIQUE INDEX key_key_id_key_context_key_type_idx ON @extschema@.key (key_id, key_context, key_type);
CREATE INDEX key_status_idx ON @extschema@.key (status) WHERE status IN ('valid', 'default');
CREATE UNIQUE INDEX key_status_idx1 ON @extschema@.key (status) WHERE status = 'default';
CREATE UNIQUE INDEX pgsodium_key_unique_name ON @extschema@.key (name);

CREATE VIEW @extschema@.valid_key AS
SELECT id, name, status, key_type, key_id, key_context, created, expires, associated_data
FROM @extschema@.key
WHERE status IN ('valid', 'default') AND (expires IS NULL OR expires > pg_catalog.now());

CREATE FUNCTION @extschema@.crypto_aead_det_encrypt(message bytea, additional bytea, key bytea, nonce bytea = NULL)
RETURNS bytea LANGUAGE sql IMMUTABLE
AS $$ SELECT @extschema@._rlscheck_seal(message, additional, key, nonce, 32, false, 'pgsodium_crypto_aead_det_encrypt') $$;
CREATE FUNCTION @extschema@.crypto_aead_det_decrypt(ciphertext bytea, additional bytea, key bytea, nonce bytea = NULL)
RETURNS bytea LANGUAGE sql IMMUTABLE
AS $$ SELECT @extschema@._rlscheck_seal(ciphertext, additional, key, nonce, 32, true, 'pgsodium_crypto_aead_det_decrypt') $$;
CREATE FUNCTION @extschema@.crypto_aead_det_encrypt(message bytea, additional bytea, key_id bigint,
                                                    context bytea = 'pgsodium', nonce bytea = NULL)
RETURNS bytea LANGUAGE sql IMMUTABLE
AS $$ SELECT @extschema@._rlscheck_seal(message, additional, @extschema@.derive_key(key_id, 32, context), nonce, 32, false,
                                        'pgsodium_crypto_aead_det_encrypt_by_id') $$;
CREATE FUNCTION @extschema@.crypto_aead_det_decrypt(message bytea, additional bytea, key_id bigint,
                                                    context bytea = 'pgsodium', nonce bytea = NULL)
RETURNS bytea LANGUAGE sql IMMUTABLE
AS $$ SELECT @extschema@._rlscheck_seal(message, additional, @extschema@.derive_key(key_id, 32, context), nonce, 32, true,
                                        'pgsodium_crypto_aead_det_decrypt_by_id') $$;

-- A key's bytes: its raw_key decrypted with its parent key, or derived from key_id/context.
CREATE FUNCTION @extschema@._rlscheck_key(key_uuid uuid, wanted @extschema@.key_type) RETURNS bytea
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  k @extschema@.key;
BEGIN
  SELECT * INTO k FROM @extschema@.key WHERE id = key_uuid AND key_type = wanted;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF k.raw_key IS NOT NULL AND k.parent_key IS NOT NULL THEN
    RETURN @extschema@._rlscheck_seal(k.raw_key, pg_catalog.convert_to(k.id::text || k.associated_data, 'utf8'),
                                      @extschema@._rlscheck_key(k.parent_key, 'aead-det'), k.raw_key_nonce, 32, true,
                                      'pgsodium_crypto_aead_det_decrypt');
  END IF;
  RETURN @extschema@.derive_key(k.key_id, 32, k.key_context);
END
$$;
REVOKE ALL ON FUNCTION @extschema@._rlscheck_key(uuid, @extschema@.key_type) FROM PUBLIC;

CREATE FUNCTION @extschema@.crypto_aead_det_encrypt(message bytea, additional bytea, key_uuid uuid)
RETURNS bytea LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@.crypto_aead_det_encrypt(message, additional, @extschema@._rlscheck_key(key_uuid, 'aead-det'), NULL::bytea) $$;
CREATE FUNCTION @extschema@.crypto_aead_det_encrypt(message bytea, additional bytea, key_uuid uuid, nonce bytea)
RETURNS bytea LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@.crypto_aead_det_encrypt(message, additional, @extschema@._rlscheck_key(key_uuid, 'aead-det'), nonce) $$;
CREATE FUNCTION @extschema@.crypto_aead_det_decrypt(message bytea, additional bytea, key_uuid uuid)
RETURNS bytea LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@.crypto_aead_det_decrypt(message, additional, @extschema@._rlscheck_key(key_uuid, 'aead-det'), NULL::bytea) $$;
CREATE FUNCTION @extschema@.crypto_aead_det_decrypt(message bytea, additional bytea, key_uuid uuid, nonce bytea)
RETURNS bytea LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@.crypto_aead_det_decrypt(message, additional, @extschema@._rlscheck_key(key_uuid, 'aead-det'), nonce) $$;
CREATE FUNCTION @extschema@.crypto_aead_det_keygen() RETURNS bytea
LANGUAGE sql VOLATILE AS $$ SELECT @extschema@.randombytes_buf(32) $$;
CREATE FUNCTION @extschema@.crypto_aead_det_noncegen() RETURNS bytea
LANGUAGE sql VOLATILE AS $$ SELECT @extschema@.randombytes_buf(16) $$;

CREATE VIEW @extschema@.decrypted_key AS
SELECT id, status, created, expires, key_type, key_id, key_context, name, associated_data, raw_key,
       CASE WHEN raw_key IS NULL OR parent_key IS NULL THEN NULL::bytea
            ELSE @extschema@.crypto_aead_det_decrypt(raw_key, pg_catalog.convert_to(id::text || associated_data, 'utf8'),
                                                     parent_key, raw_key_nonce) END AS decrypted_raw_key,
       raw_key_nonce, parent_key, comment
FROM @extschema@.key;

CREATE FUNCTION @extschema@.key_encrypt_secret_raw_key() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  IF new.raw_key IS NOT NULL AND new.parent_key IS NOT NULL THEN
    new.raw_key := @extschema@.crypto_aead_det_encrypt(new.raw_key, pg_catalog.convert_to(new.id::text || new.associated_data, 'utf8'),
                                                       new.parent_key, new.raw_key_nonce);
  ELSE
    new.raw_key := NULL;
  END IF;
  RETURN new;
END
$$;
CREATE TRIGGER key_encrypt_secret_trigger_raw_key BEFORE INSERT OR UPDATE OF raw_key ON @extschema@.key
FOR EACH ROW EXECUTE FUNCTION @extschema@.key_encrypt_secret_raw_key();

CREATE FUNCTION @extschema@.create_key(key_type @extschema@.key_type = 'aead-det', name text = NULL, raw_key bytea = NULL,
                                       raw_key_nonce bytea = NULL, parent_key uuid = NULL,
                                       key_context bytea = 'pgsodium', expires timestamptz = NULL,
                                       associated_data text = '')
RETURNS @extschema@.valid_key
LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
AS $$
DECLARE
  new_id uuid;
  result @extschema@.valid_key;
BEGIN
  INSERT INTO @extschema@.key (key_id, key_context, key_type, raw_key, raw_key_nonce, parent_key, expires, name, associated_data)
  VALUES (CASE WHEN raw_key IS NULL THEN pg_catalog.nextval('@extschema@.key_key_id_seq'::regclass) END,
          CASE WHEN raw_key IS NULL THEN key_context END,
          key_type,
          raw_key,
          CASE WHEN raw_key IS NOT NULL THEN coalesce(raw_key_nonce, @extschema@.crypto_aead_det_noncegen()) END,
          CASE WHEN parent_key IS NULL AND raw_key IS NOT NULL THEN (@extschema@.create_key('aead-det')).id ELSE parent_key END,
          expires, name, associated_data)
  RETURNING id INTO new_id;
  SELECT * INTO result FROM @extschema@.valid_key AS v WHERE v.id = new_id;
  RETURN result;
END
$$;

CREATE FUNCTION @extschema@.get_key_by_id(uuid) RETURNS @extschema@.valid_key
LANGUAGE sql SECURITY DEFINER SET search_path = ''
AS $$ SELECT * FROM @extschema@.valid_key WHERE id = $1 $$;
CREATE FUNCTION @extschema@.get_key_by_name(text) RETURNS @extschema@.valid_key
LANGUAGE sql SECURITY DEFINER SET search_path = ''
AS $$ SELECT * FROM @extschema@.valid_key WHERE name = $1 $$;
CREATE FUNCTION @extschema@.get_named_keys(filter text = '%') RETURNS SETOF @extschema@.valid_key
LANGUAGE sql SECURITY DEFINER SET search_path = ''
AS $$ SELECT * FROM @extschema@.valid_key vk WHERE vk.name ILIKE filter $$;

-- aead-ietf ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.crypto_aead_ietf_encrypt(message bytea, additional bytea, nonce bytea, key bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE
AS $$ SELECT @extschema@._rlscheck_seal(message, additional, key, nonce, 16, false, 'pgsodium_crypto_aead_ietf_encrypt') $$;
CREATE FUNCTION @extschema@.crypto_aead_ietf_decrypt(message bytea, additional bytea, nonce bytea, key bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE
AS $$ SELECT @extschema@._rlscheck_seal(message, additional, key, nonce, 16, true, 'pgsodium_crypto_aead_ietf_decrypt') $$;
CREATE FUNCTION @extschema@.crypto_aead_ietf_encrypt(message bytea, additional bytea, nonce bytea, key_id bigint, context bytea = 'pgsodium')
RETURNS bytea LANGUAGE sql IMMUTABLE
AS $$ SELECT @extschema@._rlscheck_seal(message, additional, @extschema@.derive_key(key_id, 32, context), nonce, 16, false, 'pgsodium_crypto_aead_ietf_encrypt_by_id') $$;
CREATE FUNCTION @extschema@.crypto_aead_ietf_decrypt(message bytea, additional bytea, nonce bytea, key_id bigint, context bytea = 'pgsodium')
RETURNS bytea LANGUAGE sql IMMUTABLE
AS $$ SELECT @extschema@._rlscheck_seal(message, additional, @extschema@.derive_key(key_id, 32, context), nonce, 16, true, 'pgsodium_crypto_aead_ietf_decrypt_by_id') $$;
CREATE FUNCTION @extschema@.crypto_aead_ietf_encrypt(message bytea, additional bytea, nonce bytea, key_uuid uuid)
RETURNS bytea LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@.crypto_aead_ietf_encrypt(message, additional, nonce, @extschema@._rlscheck_key(key_uuid, 'aead-ietf')) $$;
CREATE FUNCTION @extschema@.crypto_aead_ietf_decrypt(message bytea, additional bytea, nonce bytea, key_uuid uuid)
RETURNS bytea LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@.crypto_aead_ietf_decrypt(message, additional, nonce, @extschema@._rlscheck_key(key_uuid, 'aead-ietf')) $$;
CREATE FUNCTION @extschema@.crypto_aead_ietf_keygen() RETURNS bytea
LANGUAGE sql VOLATILE AS $$ SELECT @extschema@.randombytes_buf(32) $$;
CREATE FUNCTION @extschema@.crypto_aead_ietf_noncegen() RETURNS bytea
LANGUAGE sql VOLATILE AS $$ SELECT @extschema@.randombytes_buf(12) $$;

-- secretbox ---------------------------------------------------------------------------

CREATE FUNCTION @extschema@.crypto_secretbox(message bytea, nonce bytea, key bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE
AS $$ SELECT @extschema@._rlscheck_seal(message, NULL, key, nonce, 16, false, 'pgsodium_crypto_secretbox') $$;
CREATE FUNCTION @extschema@.crypto_secretbox_open(ciphertext bytea, nonce bytea, key bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE
AS $$ SELECT @extschema@._rlscheck_seal(ciphertext, NULL, key, nonce, 16, true, 'pgsodium_crypto_secretbox_open') $$;
CREATE FUNCTION @extschema@.crypto_secretbox(message bytea, nonce bytea, key_id bigint, context bytea = 'pgsodium')
RETURNS bytea LANGUAGE sql IMMUTABLE
AS $$ SELECT @extschema@._rlscheck_seal(message, NULL, @extschema@.derive_key(key_id, 32, context), nonce, 16, false, 'pgsodium_crypto_secretbox_by_id') $$;
CREATE FUNCTION @extschema@.crypto_secretbox_open(message bytea, nonce bytea, key_id bigint, context bytea = 'pgsodium')
RETURNS bytea LANGUAGE sql IMMUTABLE
AS $$ SELECT @extschema@._rlscheck_seal(message, NULL, @extschema@.derive_key(key_id, 32, context), nonce, 16, true, 'pgsodium_crypto_secretbox_open_by_id') $$;
CREATE FUNCTION @extschema@.crypto_secretbox(message bytea, nonce bytea, key_uuid uuid)
RETURNS bytea LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@.crypto_secretbox(message, nonce, @extschema@._rlscheck_key(key_uuid, 'secretbox')) $$;
CREATE FUNCTION @extschema@.crypto_secretbox_open(message bytea, nonce bytea, key_uuid uuid)
RETURNS bytea LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@.crypto_secretbox_open(message, nonce, @extschema@._rlscheck_key(key_uuid, 'secretbox')) $$;
CREATE FUNCTION @extschema@.crypto_secretbox_keygen() RETURNS bytea
LANGUAGE sql VOLATILE AS $$ SELECT @extschema@.randombytes_buf(32) $$;
CREATE FUNCTION @extschema@.crypto_secretbox_noncegen() RETURNS bytea
LANGUAGE sql VOLATILE AS $$ SELECT @extschema@.randombytes_buf(24) $$;

-- HMAC and crypto_auth (exact) --------------------------------------------------------

CREATE FUNCTION @extschema@.crypto_auth_hmacsha256(message bytea, secret bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$ SELECT @extschema@._rlscheck_hmac(message, secret, 'sha256') $$;
CREATE FUNCTION @extschema@.crypto_auth_hmacsha256(message bytea, key_id bigint, context bytea = 'pgsodium') RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$ SELECT @extschema@._rlscheck_hmac(message, @extschema@.derive_key(key_id, 32, context), 'sha256') $$;
CREATE FUNCTION @extschema@.crypto_auth_hmacsha256(message bytea, key_uuid uuid) RETURNS bytea
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@._rlscheck_hmac(message, @extschema@._rlscheck_key(key_uuid, 'hmacsha256'), 'sha256') $$;
CREATE FUNCTION @extschema@.crypto_auth_hmacsha256_verify(hash bytea, message bytea, secret bytea) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$ SELECT @extschema@._rlscheck_hmac(message, secret, 'sha256') = hash $$;
CREATE FUNCTION @extschema@.crypto_auth_hmacsha256_verify(hash bytea, message bytea, key_id bigint, context bytea = 'pgsodium') RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$ SELECT @extschema@._rlscheck_hmac(message, @extschema@.derive_key(key_id, 32, context), 'sha256') = hash $$;
CREATE FUNCTION @extschema@.crypto_auth_hmacsha256_verify(signature bytea, message bytea, key_uuid uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@._rlscheck_hmac(message, @extschema@._rlscheck_key(key_uuid, 'hmacsha256'), 'sha256') = signature $$;
CREATE FUNCTION @extschema@.crypto_auth_hmacsha256_keygen() RETURNS bytea
LANGUAGE sql VOLATILE AS $$ SELECT @extschema@.randombytes_buf(32) $$;

CREATE FUNCTION @extschema@.crypto_auth_hmacsha512(message bytea, secret bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$ SELECT @extschema@._rlscheck_hmac(message, secret, 'sha512') $$;
CREATE FUNCTION @extschema@.crypto_auth_hmacsha512(message bytea, key_id bigint, context bytea = 'pgsodium') RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$ SELECT @extschema@._rlscheck_hmac(message, @extschema@.derive_key(key_id, 32, context), 'sha512') $$;
CREATE FUNCTION @extschema@.crypto_auth_hmacsha512(message bytea, key_uuid uuid) RETURNS bytea
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@._rlscheck_hmac(message, @extschema@._rlscheck_key(key_uuid, 'hmacsha512'), 'sha512') $$;
CREATE FUNCTION @extschema@.crypto_auth_hmacsha512_verify(hash bytea, message bytea, secret bytea) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$ SELECT @extschema@._rlscheck_hmac(message, secret, 'sha512') = hash $$;
CREATE FUNCTION @extschema@.crypto_auth_hmacsha512_verify(hash bytea, message bytea, key_id bigint, context bytea = 'pgsodium') RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$ SELECT @extschema@._rlscheck_hmac(message, @extschema@.derive_key(key_id, 32, context), 'sha512') = hash $$;
CREATE FUNCTION @extschema@.crypto_auth_hmacsha512_verify(signature bytea, message bytea, key_uuid uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@._rlscheck_hmac(message, @extschema@._rlscheck_key(key_uuid, 'hmacsha512'), 'sha512') = signature $$;
CREATE FUNCTION @extschema@.crypto_auth_hmacsha512_keygen() RETURNS bytea
LANGUAGE sql VOLATILE AS $$ SELECT @extschema@.randombytes_buf(32) $$;

-- crypto_auth is HMAC-SHA-512 cut to 32 bytes
CREATE FUNCTION @extschema@.crypto_auth(message bytea, key bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$ SELECT substring(@extschema@._rlscheck_hmac(message, key, 'sha512') FROM 1 FOR 32) $$;
CREATE FUNCTION @extschema@.crypto_auth(message bytea, key_id bigint, context bytea = 'pgsodium') RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$ SELECT @extschema@.crypto_auth(message, @extschema@.derive_key(key_id, 32, context)) $$;
CREATE FUNCTION @extschema@.crypto_auth(message bytea, key_uuid uuid) RETURNS bytea
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@.crypto_auth(message, @extschema@._rlscheck_key(key_uuid, 'auth')) $$;
CREATE FUNCTION @extschema@.crypto_auth_verify(mac bytea, message bytea, key bytea) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$ SELECT @extschema@.crypto_auth(message, key) = mac $$;
CREATE FUNCTION @extschema@.crypto_auth_verify(mac bytea, message bytea, key_id bigint, context bytea = 'pgsodium') RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$ SELECT @extschema@.crypto_auth(message, @extschema@.derive_key(key_id, 32, context)) = mac $$;
CREATE FUNCTION @extschema@.crypto_auth_verify(mac bytea, message bytea, key_uuid uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
AS $$ SELECT @extschema@.crypto_auth(message, @extschema@._rlscheck_key(key_uuid, 'auth')) = mac $$;
CREATE FUNCTION @extschema@.crypto_auth_keygen() RETURNS bytea
LANGUAGE sql VOLATILE AS $$ SELECT @extschema@.randombytes_buf(32) $$;

-- not faithful without libsodium: raise ---------------------------------------------

CREATE FUNCTION @extschema@.crypto_generichash(message bytea, key bytea = NULL) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_generichash is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_generichash(message bytea, key bigint, context bytea = 'pgsodium') RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_generichash is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_generichash(message bytea, key_uuid uuid) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_generichash is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_generichash_keygen() RETURNS bytea
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_generichash_keygen is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_shorthash(message bytea, key bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_shorthash is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_shorthash(message bytea, key bigint, context bytea = 'pgsodium') RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_shorthash is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_shorthash(message bytea, key_uuid uuid) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_shorthash is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_shorthash_keygen() RETURNS bytea
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_shorthash_keygen is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_pwhash(password bytea, salt bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_pwhash is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_pwhash_saltgen() RETURNS bytea
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_pwhash_saltgen is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_pwhash_str(password bytea) RETURNS bytea
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_pwhash_str is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_pwhash_str_verify(hashed_password bytea, password bytea) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_pwhash_str_verify is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_box_new_keypair() RETURNS @extschema@.crypto_box_keypair
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_box_new_keypair is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_box_seed_new_keypair(seed bytea) RETURNS @extschema@.crypto_box_keypair
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_box_seed_new_keypair is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_box_new_seed() RETURNS bytea
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_box_new_seed is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_box_noncegen() RETURNS bytea
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_box_noncegen is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_box(message bytea, nonce bytea, public bytea, secret bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_box is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_box_open(ciphertext bytea, nonce bytea, public bytea, secret bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_box_open is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_box_seal(message bytea, public_key bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_box_seal is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_box_seal_open(ciphertext bytea, public_key bytea, secret_key bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_box_seal_open is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_sign_new_keypair() RETURNS @extschema@.crypto_sign_keypair
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_sign_new_keypair is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_sign_seed_new_keypair(seed bytea) RETURNS @extschema@.crypto_sign_keypair
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_sign_seed_new_keypair is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_sign_new_seed() RETURNS bytea
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_sign_new_seed is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_sign(message bytea, key bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_sign is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_sign_open(signed_message bytea, key bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_sign_open is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_sign_detached(message bytea, key bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_sign_detached is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_sign_verify_detached(sig bytea, message bytea, key bytea) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_sign_verify_detached is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_kx_new_keypair() RETURNS @extschema@.crypto_kx_keypair
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_kx_new_keypair is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_kx_new_seed() RETURNS bytea
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_kx_new_seed is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_kx_seed_new_keypair(seed bytea) RETURNS @extschema@.crypto_kx_keypair
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_kx_seed_new_keypair is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_kx_client_session_keys(client_pk bytea, client_sk bytea, server_pk bytea) RETURNS @extschema@.crypto_kx_session
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_kx_client_session_keys is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_kx_server_session_keys(server_pk bytea, server_sk bytea, client_pk bytea) RETURNS @extschema@.crypto_kx_session
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_kx_server_session_keys is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_kdf_keygen() RETURNS bytea
LANGUAGE plpgsql VOLATILE
AS $$ BEGIN RAISE EXCEPTION 'crypto_kdf_keygen is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_kdf_derive_from_key(subkey_size bigint, subkey_id bigint, context bytea, primary_key bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_kdf_derive_from_key is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;
CREATE FUNCTION @extschema@.crypto_kdf_derive_from_key(subkey_size integer, subkey_id bigint, context bytea, primary_key uuid) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$ BEGIN RAISE EXCEPTION 'crypto_kdf_derive_from_key is not available: pgsodium is a stand-in under pytest-rlscheck (no libsodium)' USING ERRCODE = '0A000'; END $$;

-- privileges, as pgsodium 3.1.8 sets them ---------------------------------------------

GRANT ALL ON TABLE @extschema@.key TO pgsodium_keymaker;
GRANT ALL ON SEQUENCE @extschema@.key_key_id_seq TO pgsodium_keymaker;
GRANT ALL ON @extschema@.valid_key, @extschema@.decrypted_key TO pgsodium_keyholder;
GRANT SELECT ON @extschema@.valid_key TO pgsodium_keyiduser;

-- by raw key: keyholder; by key id: keyiduser; by key uuid: keyiduser; keygen: keymaker
DO $rlscheck$
DECLARE
  f regprocedure;
  who text;
BEGIN
  FOR f, who IN
    SELECT p.oid::regprocedure,
           CASE
             WHEN p.proname = 'crypto_auth_hmacsha512_keygen' OR p.proname LIKE '\_rlscheck%' THEN NULL
             WHEN p.proname IN ('randombytes_buf', 'randombytes_random', 'randombytes_uniform',
                                'crypto_aead_det_noncegen', 'crypto_aead_ietf_noncegen', 'crypto_secretbox_noncegen')
               THEN 'pgsodium_keyiduser'
             WHEN p.proname IN ('derive_key', 'randombytes_new_seed')
                  OR p.proname LIKE '%keygen'
               THEN 'pgsodium_keymaker'
             WHEN p.proname = 'randombytes_buf_deterministic' THEN 'pgsodium_keymaker,pgsodium_keyiduser'
             WHEN p.proname ~ '^crypto_(aead|secretbox|auth)' AND 'bytea'::regtype = ALL (p.proargtypes::regtype[])
               THEN 'pgsodium_keyholder'
             WHEN p.proname ~ '^crypto_(aead|secretbox|auth)' THEN 'pgsodium_keyiduser'
           END
    FROM pg_catalog.pg_proc AS p
    WHERE p.pronamespace = '@extschema@'::regnamespace
  LOOP
    CONTINUE WHEN who IS NULL;
    EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', f, who);
  END LOOP;
END
$rlscheck$;
GRANT EXECUTE ON FUNCTION @extschema@.crypto_aead_det_noncegen() TO PUBLIC;

-- What Supabase adds after CREATE EXTENSION pgsodium: postgres administers the three roles,
-- service_role may encrypt and decrypt by key uuid.
DO $rlscheck$
DECLARE
  r text;
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'postgres') AND current_user <> 'postgres' THEN
    FOREACH r IN ARRAY ARRAY['pgsodium_keyiduser', 'pgsodium_keyholder', 'pgsodium_keymaker'] LOOP
      EXECUTE pg_catalog.format('GRANT %I TO postgres WITH ADMIN OPTION', r);
    END LOOP;
  END IF;
  IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
    GRANT EXECUTE ON FUNCTION @extschema@.crypto_aead_det_decrypt(bytea, bytea, uuid, bytea),
                              @extschema@.crypto_aead_det_encrypt(bytea, bytea, uuid, bytea),
                              @extschema@.crypto_aead_det_keygen() TO service_role;
  END IF;
END
$rlscheck$;

SELECT pg_catalog.pg_extension_config_dump('@extschema@.key', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.key_key_id_seq', '');
