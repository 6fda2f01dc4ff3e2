-- pytest-rlscheck stand-in for pgjwt 0.2.0 (the version Supabase ships, in schema
-- extensions). Same functions, argument names, defaults and results as pgjwt: HS256,
-- HS384 and HS512 tokens signed with pgcrypto's hmac(); verify() checks the signature
-- with the algorithm the caller names, and the nbf/exp claims (seconds since the epoch)
-- against the current time, the way pgjwt does.

\echo Use "CREATE EXTENSION pgjwt" to load this file. \quit

-- base64url without padding (RFC 7515 section 2)
CREATE FUNCTION url_encode(data bytea) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
  SELECT pg_catalog.translate(pg_catalog.encode(data, 'base64'), E'+/=\n', '-_')
$$;

CREATE FUNCTION url_decode(data text) RETURNS bytea
LANGUAGE sql IMMUTABLE
AS $$
  SELECT pg_catalog.decode(
    b64 || pg_catalog.repeat('=', (4 - pg_catalog.length(b64) % 4) % 4), 'base64')
  FROM (SELECT pg_catalog.translate(data, '-_', '+/') AS b64) AS t
$$;

-- pgjwt calls pgcrypto's hmac() in pgcrypto's schema; that schema is looked up here,
-- once, so the function works whatever the caller's search_path.
DO $rlscheck$
DECLARE
  crypto_schema text := (SELECT e.extnamespace::pg_catalog.regnamespace::text
                         FROM pg_catalog.pg_extension AS e WHERE e.extname = 'pgcrypto');
BEGIN
  EXECUTE pg_catalog.format($f$
    CREATE FUNCTION @extschema@.algorithm_sign(signables text, secret text, algorithm text)
    RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $body$
      SELECT @extschema@.url_encode(%s.hmac(signables, secret,
        CASE algorithm WHEN 'HS256' THEN 'sha256' WHEN 'HS384' THEN 'sha384'
                       WHEN 'HS512' THEN 'sha512' ELSE '' END))
    $body$
  $f$, crypto_schema);
END
$rlscheck$;

CREATE FUNCTION sign(payload json, secret text, algorithm text DEFAULT 'HS256') RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
  SELECT s.signables || '.' || @extschema@.algorithm_sign(s.signables, secret, algorithm)
  FROM (SELECT @extschema@.url_encode(pg_catalog.convert_to('{"alg":"' || algorithm || '","typ":"JWT"}', 'utf8'))
               || '.' || @extschema@.url_encode(pg_catalog.convert_to(payload::text, 'utf8')) AS signables) AS s
$$;

CREATE FUNCTION try_cast_double(inp text) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  RETURN inp::double precision;
EXCEPTION WHEN OTHERS THEN
  RETURN NULL;
END
$$;

CREATE FUNCTION verify(token text, secret text, algorithm text DEFAULT 'HS256')
RETURNS TABLE(header json, payload json, valid boolean)
LANGUAGE sql IMMUTABLE
AS $$
  SELECT j.header, j.payload,
         j.signature_ok
         AND pg_catalog.tstzrange(pg_catalog.to_timestamp(@extschema@.try_cast_double(j.payload ->> 'nbf')),
                                  pg_catalog.to_timestamp(@extschema@.try_cast_double(j.payload ->> 'exp')))
             @> CURRENT_TIMESTAMP
  FROM (
    SELECT pg_catalog.convert_from(@extschema@.url_decode(part[1]), 'utf8')::json AS header,
           pg_catalog.convert_from(@extschema@.url_decode(part[2]), 'utf8')::json AS payload,
           part[3] = @extschema@.algorithm_sign(part[1] || '.' || part[2], secret, algorithm) AS signature_ok
    FROM pg_catalog.regexp_split_to_array(token, '\.') AS part
  ) AS j
$$;
