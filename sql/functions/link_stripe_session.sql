-- depends: checkout_session_rules
-- Called by runner/checkout.py once Stripe has created the Checkout Session for a row.
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("link_stripe_session") }}(
  p_session_id        UUID,
  p_stripe_session_id TEXT,
  p_checkout_url      TEXT,
  p_expires_at        TIMESTAMP WITH TIME ZONE,
  p_generation        INTEGER
)
RETURNS BOOLEAN
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_row payment_checkout_sessions%ROWTYPE;
BEGIN
  IF p_session_id IS NULL OR p_generation IS NULL OR p_generation < 0 THEN
    RAISE EXCEPTION 'p_session_id and a non-negative p_generation are required' USING ERRCODE = '22023';
  END IF;
  IF p_stripe_session_id IS NULL OR btrim(p_stripe_session_id) = '' OR length(p_stripe_session_id) > 255 THEN
    RAISE EXCEPTION 'p_stripe_session_id is required (at most 255 characters)' USING ERRCODE = '22023';
  END IF;
  IF p_checkout_url IS NULL OR p_checkout_url !~ '^https?://' OR length(p_checkout_url) > 4096 THEN
    RAISE EXCEPTION 'p_checkout_url must be an http(s) URL' USING ERRCODE = '22023';
  END IF;

  SELECT * INTO v_row FROM payment_checkout_sessions WHERE id = p_session_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unknown checkout session: %', p_session_id USING ERRCODE = 'P0002';
  END IF;
  IF v_row.stripe_session_id = p_stripe_session_id THEN
    RETURN TRUE;  -- a concurrent request linked the same session (same idempotency key): nothing to do
  END IF;
  -- Only the request that read this generation may link; a row that left pending (paid, expired,
  -- canceled meanwhile) keeps what it has.
  IF v_row.status <> 'pending' OR v_row.stripe_sessions_created <> p_generation THEN
    RETURN FALSE;
  END IF;

  UPDATE payment_checkout_sessions
     SET stripe_session_id = p_stripe_session_id,
         checkout_url = p_checkout_url,
         expires_at = COALESCE(p_expires_at, expires_at),
         stripe_sessions_created = stripe_sessions_created + 1
   WHERE id = p_session_id;
  RETURN TRUE;
END;
$$;

COMMENT ON FUNCTION {{ m.q("link_stripe_session") }}(UUID, TEXT, TEXT, TIMESTAMP WITH TIME ZONE, INTEGER) IS
  'Stores the Stripe session id, checkout URL and Stripe''s expiry on a pending row, if p_generation is still '
  'its stripe_sessions_created (optimistic: a concurrent link wins once). True when linked (or already linked '
  'to that Stripe session), false when the row moved on. Raises 22023 for bad input, P0002 for an unknown row.';
