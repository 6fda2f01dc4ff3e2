-- pytest-rlscheck stand-in for supabase_vault 0.3.1 (Supabase's current Vault: it no
-- longer needs pgsodium; the C library keeps the root key). Same table, view, functions,
-- argument names, defaults and privileges as on a Supabase project:
--   * vault.secrets (id, name unique when set, description, secret, key_id, nonce,
--     created_at, updated_at) and the view vault.decrypted_secrets (adds decrypted_secret);
--   * vault.create_secret / vault.update_secret, SECURITY DEFINER with search_path '';
--   * execute on the functions revoked from PUBLIC; the role postgres gets what the
--     Supabase image grants it after CREATE EXTENSION: usage on the schema, select and
--     delete on the table and the view, execute on create_secret, update_secret and
--     _crypto_aead_det_decrypt, all with grant option. anon, authenticated and
--     service_role get nothing.
-- Simulated: the cipher. _crypto_aead_det_encrypt/_decrypt keep the real signatures
-- and sizes (32 bytes added, 16-byte nonces) and fail on a changed ciphertext, nonce or
-- associated data with the real error, but they are a SHA-256 keystream and MAC under a
-- key derived from a constant, not XChaCha20-SIV under the server's root key: the
-- stored secret is not the plaintext, yet is no secret from anyone who reads this file.

\echo Use "CREATE EXTENSION supabase_vault" to load this file. \quit

CREATE FUNCTION @extschema@._crypto_aead_det_noncegen() RETURNS bytea
LANGUAGE sql IMMUTABLE
AS $$
  SELECT pg_catalog.substr(pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 1, 8)
      || pg_catalog.substr(pg_catalog.uuid_send(pg_catalog.gen_random_uuid()), 9, 8)
$$;

CREATE FUNCTION @extschema@._crypto_aead_det_encrypt(message bytea, additional bytea, key_id bigint,
                                                     context bytea = 'pgsodium', nonce bytea = NULL)
RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  key bytea := pg_catalog.sha256(pg_catalog.convert_to('rlscheck vault stand-in root key', 'UTF8')
                                 || pg_catalog.int8send(key_id) || context);
  mac bytea;
  ks bytea := ''::bytea;
  out bytea := message;
  i int;
BEGIN
  IF message IS NULL OR additional IS NULL OR key_id IS NULL OR context IS NULL THEN
    RETURN NULL;
  END IF;
  -- synthetic IV: the MAC of nonce, associated data and message (deterministic without a nonce)
  mac := pg_catalog.sha256(key || '\x01'::bytea || coalesce(nonce, ''::bytea)
                           || pg_catalog.int8send(pg_catalog.length(additional)) || additional || message);
  WHILE pg_catalog.length(ks) < pg_catalog.length(message) LOOP
    ks := ks || pg_catalog.sha256(key || '\x02'::bytea || mac || pg_catalog.int4send(pg_catalog.length(ks) / 32));
  END LOOP;
  FOR i IN 0 .. pg_catalog.length(message) - 1 LOOP
    out := pg_catalog.set_byte(out, i, pg_catalog.get_byte(message, i) # pg_catalog.get_byte(ks, i));
  END LOOP;
  RETURN out || mac;
END
$$;

CREATE FUNCTION @extschema@._crypto_aead_det_decrypt(message bytea, additional bytea, key_id bigint,
                                                     context bytea = 'pgsodium', nonce bytea = NULL)
RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  key bytea := pg_catalog.sha256(pg_catalog.convert_to('rlscheck vault stand-in root key', 'UTF8')
                                 || pg_catalog.int8send(key_id) || context);
  n int := pg_catalog.length(message) - 32;
  mac bytea;
  ks bytea := ''::bytea;
  out bytea;
  i int;
BEGIN
  IF message IS NULL OR additional IS NULL OR key_id IS NULL OR context IS NULL THEN
    RETURN NULL;
  END IF;
  IF n < 0 THEN
    RAISE EXCEPTION 'pgsodium_crypto_aead_det_decrypt_by_id: invalid message' USING ERRCODE = '22000';
  END IF;
  mac := substring(message FROM n + 1);
  out := substring(message FROM 1 FOR n);
  WHILE pg_catalog.length(ks) < n LOOP
    ks := ks || pg_catalog.sha256(key || '\x02'::bytea || mac || pg_catalog.int4send(pg_catalog.length(ks) / 32));
  END LOOP;
  FOR i IN 0 .. n - 1 LOOP
    out := pg_catalog.set_byte(out, i, pg_catalog.get_byte(out, i) # pg_catalog.get_byte(ks, i));
  END LOOP;
  IF pg_catalog.sha256(key || '\x01'::bytea || coalesce(nonce, ''::bytea)
                       || pg_catalog.int8send(pg_catalog.length(additional)) || additional || out) <> mac THEN
    RAISE EXCEPTION 'pgsodium_crypto_aead_det_decrypt_by_id: invalid ciphertext' USING ERRCODE = '22000';
  END IF;
  RETURN out;
END
$$;

CREATE TABLE @extschema@.secrets (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text,
  description text NOT NULL DEFAULT '',
  secret      text NOT NULL,
  key_id      uuid,
  nonce       bytea DEFAULT @extschema@._crypto_aead_det_noncegen(),
  created_at  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);

COMMENT ON TABLE @extschema@.secrets IS 'Table with encrypted `secret` column for storing sensitive information on disk.';

CREATE UNIQUE INDEX secrets_name_idx ON @extschema@.secrets USING btree (name) WHERE name IS NOT NULL;

CREATE VIEW @extschema@.decrypted_secrets AS
SELECT s.id,
       s.name,
       s.description,
       s.secret,
       pg_catalog.convert_from(
         @extschema@._crypto_aead_det_decrypt(
           message := pg_catalog.decode(s.secret, 'base64'),
           additional := pg_catalog.convert_to(s.id::text, 'utf8'),
           key_id := 0,
           context := 'pgsodium'::bytea,
           nonce := s.nonce),
         'utf8') AS decrypted_secret,
       s.key_id,
       s.nonce,
       s.created_at,
       s.updated_at
FROM @extschema@.secrets AS s;

-- new_key_id is accepted and ignored, as in Vault 0.3.
CREATE FUNCTION @extschema@.create_secret(new_secret text, new_name text = NULL,
                                          new_description text = '', new_key_id uuid = NULL)
RETURNS uuid
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
  new_id uuid;
  new_nonce bytea;
BEGIN
  INSERT INTO @extschema@.secrets (secret, name, description)
  VALUES (new_secret, new_name, new_description)
  RETURNING id, nonce INTO new_id, new_nonce;
  UPDATE @extschema@.secrets
  SET secret = pg_catalog.encode(@extschema@._crypto_aead_det_encrypt(
                 message := pg_catalog.convert_to(new_secret, 'utf8'),
                 additional := pg_catalog.convert_to(new_id::text, 'utf8'),
                 key_id := 0,
                 context := 'pgsodium'::bytea,
                 nonce := new_nonce), 'base64')
  WHERE id = new_id;
  RETURN new_id;
END
$$;

CREATE FUNCTION @extschema@.update_secret(secret_id uuid, new_secret text = NULL, new_name text = NULL,
                                          new_description text = NULL, new_key_id uuid = NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
  UPDATE @extschema@.secrets AS s
  SET secret = CASE WHEN new_secret IS NULL THEN s.secret
                    ELSE pg_catalog.encode(@extschema@._crypto_aead_det_encrypt(
                           message := pg_catalog.convert_to(new_secret, 'utf8'),
                           additional := pg_catalog.convert_to(s.id::text, 'utf8'),
                           key_id := 0,
                           context := 'pgsodium'::bytea,
                           nonce := s.nonce), 'base64') END,
      name = coalesce(new_name, s.name),
      description = coalesce(new_description, s.description),
      updated_at = pg_catalog.now()
  WHERE s.id = secret_id;
END
$$;

REVOKE ALL ON FUNCTION
  @extschema@._crypto_aead_det_encrypt(bytea, bytea, bigint, bytea, bytea),
  @extschema@._crypto_aead_det_decrypt(bytea, bytea, bigint, bytea, bytea),
  @extschema@._crypto_aead_det_noncegen(),
  @extschema@.create_secret(text, text, text, uuid),
  @extschema@.update_secret(uuid, text, text, text, uuid)
FROM PUBLIC;

-- What the Supabase image grants postgres after CREATE EXTENSION (its
-- supabase_vault/after-create.sql); nothing to do where postgres owns everything here.
DO $rlscheck$
BEGIN
  IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'postgres') AND current_user <> 'postgres' THEN
    GRANT USAGE ON SCHEMA @extschema@ TO postgres WITH GRANT OPTION;
    GRANT SELECT, DELETE ON @extschema@.secrets, @extschema@.decrypted_secrets TO postgres WITH GRANT OPTION;
    GRANT EXECUTE ON FUNCTION
      @extschema@.create_secret(text, text, text, uuid),
      @extschema@.update_secret(uuid, text, text, text, uuid),
      @extschema@._crypto_aead_det_decrypt(bytea, bytea, bigint, bytea, bytea)
    TO postgres WITH GRANT OPTION;
  END IF;
END
$rlscheck$;

SELECT pg_catalog.pg_extension_config_dump('@extschema@.secrets', '');
