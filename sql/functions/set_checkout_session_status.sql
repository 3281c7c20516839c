-- depends: checkout_session_rules
-- The PATCH of the checkout API: close a pending session by hand (the customer cancels, support expires).
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("set_checkout_session_status") }}(
  p_session_id UUID,
  p_status     TEXT,
  p_user_id    UUID DEFAULT NULL
)
RETURNS SETOF {{ m.q("payment_checkout_sessions") }}
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_row payment_checkout_sessions%ROWTYPE;
BEGIN
  IF p_session_id IS NULL THEN
    RAISE EXCEPTION 'p_session_id is required' USING ERRCODE = '22023';
  END IF;
  IF p_status IS NULL OR p_status NOT IN ('canceled', 'expired', 'failed') THEN
    RAISE EXCEPTION 'status must be canceled, expired or failed, got %', coalesce(quote_literal(left(p_status, 40)), 'NULL')
      USING ERRCODE = '22023',
            HINT = 'A session is completed only by a payment Stripe confirms (the webhook).';
  END IF;

  SELECT * INTO v_row FROM payment_checkout_sessions
   WHERE id = p_session_id AND (p_user_id IS NULL OR user_id = p_user_id)
     FOR UPDATE;
  IF NOT FOUND THEN
    -- Another user's session is reported exactly like a missing one.
    RAISE EXCEPTION 'unknown checkout session: %', p_session_id USING ERRCODE = 'P0002';
  END IF;
  IF v_row.status = p_status THEN
    RETURN NEXT v_row;  -- asked twice: the same answer, nothing changed
    RETURN;
  END IF;
  IF v_row.status <> 'pending' THEN
    RAISE EXCEPTION 'checkout session % is %; only a pending session can become %', p_session_id, v_row.status, p_status
      USING ERRCODE = '55000';
  END IF;

  RETURN QUERY
  UPDATE payment_checkout_sessions SET status = p_status WHERE id = p_session_id RETURNING *;
END;
$$;

COMMENT ON FUNCTION {{ m.q("set_checkout_session_status") }}(UUID, TEXT, UUID) IS
  'Moves a pending session to canceled, expired or failed and returns it (idempotent when already there). '
  'With p_user_id, only that user''s session. Raises 22023 for another status, P0002 for an unknown (or '
  'another user''s) session, 55000 when the session is no longer pending.';
