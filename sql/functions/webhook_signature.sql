-- The database's own check of a Stripe webhook delivery: the Stripe-Signature header against the secrets of
-- webhook_secrets (HMAC-SHA256 built from core sha256(): no pgcrypto needed), and the event's shape, strictly
-- typed. record_webhook_event and fail_webhook_event call them, so a database credential alone cannot record
-- an event Stripe did not sign. The secret functions are owner-only (`runner webhook secret set|list|remove`).
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("webhook_hmac_keys") }}(
  p_secret      TEXT,
  OUT inner_key BYTEA,
  OUT outer_key BYTEA
)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_key BYTEA := convert_to(p_secret, 'UTF8');
BEGIN
  -- RFC 2104 with SHA-256's 64-byte block: a longer key is hashed first, a shorter one padded with zeros.
  IF octet_length(v_key) > 64 THEN
    v_key := sha256(v_key);
  END IF;
  v_key := v_key || decode(repeat('00', 64 - octet_length(v_key)), 'hex');
  inner_key := v_key;
  outer_key := v_key;
  FOR i IN 0..63 LOOP
    inner_key := set_byte(inner_key, i, get_byte(v_key, i) # 54);  -- 0x36
    outer_key := set_byte(outer_key, i, get_byte(v_key, i) # 92);  -- 0x5c
  END LOOP;
END;
$$;

COMMENT ON FUNCTION {{ m.q("webhook_hmac_keys") }}(TEXT) IS
  'HMAC-SHA256''s padded keys of a secret (key XOR ipad, key XOR opad): '
  'HMAC(k, m) = sha256(outer_key || sha256(inner_key || m)).';

CREATE OR REPLACE FUNCTION {{ m.q("stripe_signature_problem") }}(
  p_body      TEXT,
  p_header    TEXT,
  p_tolerance INTEGER DEFAULT 300
)
RETURNS TEXT
LANGUAGE plpgsql VOLATILE  -- reads the clock (clock_timestamp) and a table only the owner may read
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_timestamp  TEXT;
  v_signatures TEXT[];
  v_age        NUMERIC;
  v_message    BYTEA;
  v_hashes     BYTEA[];
BEGIN
  IF p_tolerance IS NULL OR p_tolerance < 1 THEN
    RAISE EXCEPTION 'p_tolerance must be at least 1 second' USING ERRCODE = '22023';
  END IF;
  IF p_body IS NULL THEN
    RETURN 'no body';
  END IF;
  IF p_header IS NULL OR p_header = '' THEN
    RETURN 'missing Stripe-Signature header';
  END IF;
  -- As the stripe library reads it: comma-separated key=value items, the first t=, every v1= (one per
  -- secret Stripe signs with while a secret is being rolled).
  SELECT (array_agg(substr(h.item, 3) ORDER BY h.n) FILTER (WHERE h.item LIKE 't=%'))[1],
         array_agg(substr(h.item, 4) ORDER BY h.n) FILTER (WHERE h.item LIKE 'v1=%')
    INTO v_timestamp, v_signatures
    FROM unnest(string_to_array(left(p_header, 8192), ',')) WITH ORDINALITY AS h(item, n);
  IF v_timestamp IS NULL OR v_timestamp !~ '^[0-9]{1,12}$' THEN
    RETURN 'Stripe-Signature has no timestamp';
  END IF;
  IF v_signatures IS NULL THEN
    RETURN 'Stripe-Signature has no v1 signature';
  END IF;
  v_age := extract(epoch FROM clock_timestamp()) - v_timestamp::bigint;
  IF v_age > p_tolerance THEN
    RETURN format('Stripe-Signature timestamp is %s s old (tolerance %s s)', floor(v_age), p_tolerance);
  END IF;
  IF -v_age > p_tolerance THEN  -- minted ahead of time, it would stay replayable for longer
    RETURN format('Stripe-Signature timestamp is %s s in the future (tolerance %s s)', floor(-v_age), p_tolerance);
  END IF;

  v_message := convert_to(v_timestamp || '.' || p_body, 'UTF8');
  -- Compared as hashes of the hex digests, so the comparison's timing tells a caller nothing about how much
  -- of a guessed signature was right (the double-HMAC defence; `=` on text stops at the first difference).
  v_hashes := ARRAY(SELECT sha256(convert_to(sig, 'UTF8')) FROM unnest(v_signatures) AS sig);
  PERFORM 1 FROM webhook_secrets s
   WHERE sha256(convert_to(encode(sha256(s.outer_key || sha256(s.inner_key || v_message)), 'hex'), 'UTF8'))
         = ANY (v_hashes);
  IF FOUND THEN
    RETURN NULL;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM webhook_secrets) THEN
    RETURN 'no webhook signing secret is configured in the database: run `runner webhook secret set` as its owner';
  END IF;
  RETURN 'Stripe-Signature does not verify with any webhook signing secret of the database';
END;
$$;

COMMENT ON FUNCTION {{ m.q("stripe_signature_problem") }}(TEXT, TEXT, INTEGER) IS
  'Why a Stripe-Signature header does not sign the body (t=timestamp, one or more v1=HMAC-SHA256 hex of '
  '"timestamp.body"), checked against every row of webhook_secrets and a tolerance in seconds either side of '
  'now; NULL when it does. Reads webhook_secrets, so only the owner (and its definer functions) can use it.';

CREATE OR REPLACE FUNCTION {{ m.q("webhook_event_problem") }}(p_payload JSONB)
RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_obj   JSONB := p_payload -> 'data' -> 'object';
  v_field TEXT;
  v_limit INTEGER;
BEGIN
  IF jsonb_typeof(p_payload) IS DISTINCT FROM 'object' THEN
    RETURN 'the event is not a JSON object';
  END IF;
  IF jsonb_typeof(p_payload -> 'id') IS DISTINCT FROM 'string' OR length(p_payload ->> 'id') NOT BETWEEN 1 AND 255
     OR p_payload ->> 'id' ~ '[[:cntrl:]]' THEN
    RETURN 'id must be a string of 1 to 255 printable characters';
  END IF;
  IF jsonb_typeof(p_payload -> 'type') IS DISTINCT FROM 'string' OR length(p_payload ->> 'type') NOT BETWEEN 1 AND 255
     OR p_payload ->> 'type' ~ '[[:cntrl:]]' THEN
    RETURN 'type must be a string of 1 to 255 printable characters';
  END IF;
  IF jsonb_typeof(p_payload -> 'livemode') IS DISTINCT FROM 'boolean' THEN
    RETURN format('livemode must be a JSON boolean, got %s', coalesce(left((p_payload -> 'livemode')::text, 40), 'none'));
  END IF;
  IF jsonb_typeof(v_obj) IS DISTINCT FROM 'object' THEN
    RETURN 'data.object must be a JSON object';
  END IF;
  IF p_payload ->> 'type' NOT LIKE 'checkout.session.%' THEN
    RETURN NULL;  -- not an event this service acts on: stored and ignored as it is
  END IF;

  -- The fields a checkout event is read by: each null or absent, else of its JSON type and length.
  FOREACH v_field IN ARRAY ARRAY['id', 'object', 'customer', 'currency', 'payment_status', 'client_reference_id']
  LOOP
    v_limit := CASE v_field WHEN 'currency' THEN 10 WHEN 'payment_status' THEN 50 ELSE 255 END;
    IF jsonb_typeof(v_obj -> v_field) NOT IN ('string', 'null') THEN
      RETURN format('data.object.%s must be a JSON string, got %s', v_field, left((v_obj -> v_field)::text, 40));
    ELSIF length(v_obj ->> v_field) > v_limit THEN
      RETURN format('data.object.%s is longer than %s characters', v_field, v_limit);
    END IF;
  END LOOP;
  IF jsonb_typeof(v_obj -> 'amount_total') NOT IN ('number', 'null') THEN
    RETURN format('data.object.amount_total must be a JSON number, got %s', left((v_obj -> 'amount_total')::text, 40));
  END IF;
  IF jsonb_typeof(v_obj -> 'metadata') NOT IN ('object', 'null') THEN
    RETURN 'data.object.metadata must be a JSON object';
  END IF;
  FOREACH v_field IN ARRAY ARRAY['userId', 'checkoutSessionId'] LOOP
    IF jsonb_typeof(v_obj -> 'metadata' -> v_field) NOT IN ('string', 'null') THEN
      RETURN format('data.object.metadata.%s must be a JSON string', v_field);
    ELSIF length(v_obj -> 'metadata' ->> v_field) > 255 THEN
      RETURN format('data.object.metadata.%s is longer than 255 characters', v_field);
    END IF;
  END LOOP;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION {{ m.q("webhook_event_problem") }}(JSONB) IS
  'Why a Stripe event cannot be processed as sent (not an object; id, type not printable strings of at most '
  '255 characters; livemode not a JSON boolean; a checkout session''s fields of the wrong JSON type or too '
  'long), or NULL. Strict: "2999" is not the number 2999, "false" is not the boolean false.';

CREATE OR REPLACE FUNCTION {{ m.q("set_webhook_secret") }}(p_secret TEXT)
RETURNS TABLE (fingerprint TEXT, hint TEXT, added BOOLEAN)
LANGUAGE plpgsql
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_keys RECORD;
BEGIN
  IF p_secret IS NULL OR length(p_secret) NOT BETWEEN 8 AND 1000 OR p_secret ~ '[[:space:][:cntrl:],]' THEN
    RAISE EXCEPTION 'a webhook signing secret is 8 to 1000 characters without spaces or commas (whsec_...)'
      USING ERRCODE = '22023';
  END IF;
  fingerprint := left(encode(sha256(convert_to(p_secret, 'UTF8')), 'hex'), 16);
  hint := CASE WHEN p_secret LIKE 'whsec\_%' THEN 'whsec_' ELSE '' END
          || '…' || right(p_secret, CASE WHEN length(p_secret) >= 16 THEN 4 ELSE 2 END);
  v_keys := webhook_hmac_keys(p_secret);
  INSERT INTO webhook_secrets AS s (fingerprint, hint, inner_key, outer_key)
  VALUES (fingerprint, hint, v_keys.inner_key, v_keys.outer_key)
  ON CONFLICT ON CONSTRAINT webhook_secrets_fingerprint_key DO NOTHING;
  added := FOUND;
  RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION {{ m.q("set_webhook_secret") }}(TEXT) IS
  'Adds a Stripe webhook signing secret (owner only); added = false when it was there already.';

CREATE OR REPLACE FUNCTION {{ m.q("remove_webhook_secret") }}(p_fingerprint TEXT)
RETURNS BOOLEAN
LANGUAGE sql
{{ m.pinned_search_path() }}
AS $$
  WITH removed AS (
    DELETE FROM webhook_secrets s
     WHERE s.fingerprint = lower(p_fingerprint)
        OR (length(p_fingerprint) >= 8 AND s.fingerprint = left(encode(sha256(convert_to(p_fingerprint, 'UTF8')), 'hex'), 16))
    RETURNING 1
  )
  SELECT count(*) > 0 FROM removed;
$$;

COMMENT ON FUNCTION {{ m.q("remove_webhook_secret") }}(TEXT) IS
  'Removes a webhook signing secret named by its fingerprint (or given itself); false when there was none.';
