-- depends: checkout_session_rules
-- Called by the webhook when Stripe confirms a payment.
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("complete_checkout_session") }}(
  p_session_id         UUID,
  p_stripe_session_id  TEXT,
  p_stripe_customer_id TEXT DEFAULT NULL
)
RETURNS BOOLEAN
LANGUAGE plpgsql
-- The owner's rights, like every entry point: a caller granted EXECUTE (Supabase's service_role, the
-- reference's webhook) needs no table privileges.
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_row payment_checkout_sessions%ROWTYPE;
BEGIN
  IF p_session_id IS NULL THEN
    RAISE EXCEPTION 'p_session_id is required' USING ERRCODE = '22023';
  END IF;
  IF p_stripe_session_id IS NULL OR btrim(p_stripe_session_id) = '' OR length(p_stripe_session_id) > 255 THEN
    RAISE EXCEPTION 'p_stripe_session_id is required (at most 255 characters)' USING ERRCODE = '22023';
  END IF;
  IF length(p_stripe_customer_id) > 255 THEN
    RAISE EXCEPTION 'p_stripe_customer_id is longer than 255 characters' USING ERRCODE = '22023';
  END IF;

  SELECT * INTO v_row FROM payment_checkout_sessions WHERE id = p_session_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unknown checkout session: %', p_session_id USING ERRCODE = 'P0002';
  END IF;
  IF v_row.stripe_session_id IS NOT NULL AND v_row.stripe_session_id <> p_stripe_session_id THEN
    RAISE EXCEPTION 'checkout session % belongs to Stripe session %, not %',
      p_session_id, v_row.stripe_session_id, p_stripe_session_id
      USING ERRCODE = '22023';
  END IF;
  IF v_row.status = 'completed' THEN
    RETURN FALSE;  -- already done: completing twice changes nothing
  END IF;

  UPDATE payment_checkout_sessions
     SET status = 'completed',
         completed_at = now(),
         stripe_session_id = p_stripe_session_id,
         stripe_customer_id = COALESCE(p_stripe_customer_id, stripe_customer_id)
   WHERE id = p_session_id;
  -- The user's subscription is activated in this same transaction by the
  -- payment_checkout_sessions_activate_on_update trigger (checkout_session_rules.sql).
  RETURN TRUE;
END;
$$;

COMMENT ON FUNCTION {{ m.q("complete_checkout_session") }}(UUID, TEXT, TEXT) IS
  'Marks the session completed, links the Stripe ids and activates the user''s subscription, in one '
  'transaction. Idempotent (returns false when already completed); completes a locally expired session '
  '(the customer paid). Raises P0002 for an unknown session, 22023 for a Stripe session id mismatch.';
