-- The app's context on a checkout (a campaign, a referrer, the page the customer came from), stored in
-- payment_checkout_sessions.metadata and sent to Stripe as the Checkout Session's metadata. The limits keep
-- every top-level entry within what Stripe's metadata accepts (at most 50 keys of at most 40 characters
-- without square brackets, values of at most 500 characters) after the runner's own three keys.
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("checkout_metadata_problem") }}(p_metadata JSONB)
RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_key   TEXT;
  v_value JSONB;
  v_depth INTEGER;
BEGIN
  IF p_metadata IS NULL THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(p_metadata) <> 'object' THEN
    RETURN 'metadata must be a JSON object';
  END IF;
  IF octet_length(p_metadata::text) > 4096 THEN
    RETURN format('metadata is %s bytes of JSON, at most 4096', octet_length(p_metadata::text));
  END IF;
  IF (SELECT count(*) FROM jsonb_object_keys(p_metadata)) > 20 THEN
    RETURN 'metadata has more than 20 keys';
  END IF;
  FOR v_key, v_value IN SELECT key, value FROM jsonb_each(p_metadata) LOOP
    IF v_key !~ '^[A-Za-z0-9_.:-]{1,40}$' THEN
      RETURN format('metadata key %s must be 1-40 letters, digits, _ . : or -', quote_literal(left(v_key, 60)));
    END IF;
    -- The keys the runner sets on the Stripe session itself (the webhook trusts them), and its own prefix.
    IF lower(v_key) IN ('userid', 'plan', 'checkoutsessionid') OR lower(v_key) LIKE 'runner%' THEN
      RETURN format('metadata key %s is reserved by the project', quote_literal(v_key));
    END IF;
    -- As sent to Stripe: a string as it is, anything else as its JSON text.
    IF length(CASE WHEN jsonb_typeof(v_value) = 'string' THEN v_value #>> '{}' ELSE v_value::text END) > 500 THEN
      RETURN format('metadata value of %s is longer than 500 characters', quote_literal(v_key));
    END IF;
  END LOOP;
  -- Nesting: the object itself is depth 1; at most 3 levels of objects and arrays.
  WITH RECURSIVE walk(value, depth) AS (
    SELECT p_metadata, 1
    UNION ALL
    SELECT c.value, w.depth + 1
      FROM walk w
     CROSS JOIN LATERAL (
       SELECT e.value FROM jsonb_each(CASE WHEN jsonb_typeof(w.value) = 'object' THEN w.value END) e
       UNION ALL
       SELECT a.value FROM jsonb_array_elements(CASE WHEN jsonb_typeof(w.value) = 'array' THEN w.value END) a
     ) c
     WHERE w.depth <= 3 AND jsonb_typeof(c.value) IN ('object', 'array')
  )
  SELECT max(depth) INTO v_depth FROM walk;
  IF v_depth > 3 THEN
    RETURN 'metadata is nested more than 3 levels deep';
  END IF;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_metadata_problem") }}(JSONB) IS
  'Why this JSON cannot be a checkout''s metadata, or NULL when it can (NULL included): a JSON object of at '
  'most 4096 bytes and 20 keys (1-40 of A-Z a-z 0-9 _ . : -), none reserved (userId, plan, checkoutSessionId, '
  'runner*), each value at most 500 characters as Stripe gets it, nested at most 3 levels.';
