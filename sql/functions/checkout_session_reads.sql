-- depends: process_webhook_event
-- The reads runner/checkout.py makes, as functions: the application role has no table privileges
-- (sql/functions/privileges.sql), so it reads a session, its plan's terms and a user's email here.
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("get_checkout_session") }}(
  p_session_id UUID,
  p_user_id    UUID DEFAULT NULL
)
RETURNS SETOF {{ m.q("payment_checkout_sessions") }}
LANGUAGE plpgsql STABLE
ROWS 1
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
BEGIN
  IF p_session_id IS NULL THEN
    RAISE EXCEPTION 'p_session_id is required' USING ERRCODE = '22023';
  END IF;
  RETURN QUERY
  SELECT * FROM payment_checkout_sessions s
   WHERE s.id = p_session_id AND (p_user_id IS NULL OR s.user_id = p_user_id);
END;
$$;

COMMENT ON FUNCTION {{ m.q("get_checkout_session") }}(UUID, UUID) IS
  'One checkout session by id, or no row. With p_user_id, only if it is that user''s (another user''s '
  'session is no row, like a missing one). Raises 22023 without an id.';

CREATE OR REPLACE FUNCTION {{ m.q("checkout_plan_terms") }}(
  p_plan     TEXT,
  p_price    NUMERIC,
  p_currency TEXT DEFAULT NULL
)
RETURNS TABLE (plan_name VARCHAR, stripe_price_id VARCHAR, billing_interval VARCHAR, amount_minor BIGINT,
               plan_currency TEXT)
LANGUAGE sql STABLE
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
  -- What a Stripe Checkout Session is created with: the catalogue's name, price id and interval, and the
  -- session's own price (fixed when the row was created) in Stripe's minor units.
  SELECT p.name, p.stripe_price_id, p.billing_interval,
         stripe_amount_minor_units(p_price, coalesce(p_currency, p.currency)),
         coalesce(p_currency, p.currency)::text
    FROM subscription_plans p
   WHERE p.code = p_plan;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_plan_terms") }}(TEXT, NUMERIC, TEXT) IS
  'A plan''s name, Stripe price id and billing interval from the catalogue, with p_price in Stripe''s minor '
  'units of p_currency (else the plan''s currency); no row for an unknown plan.';

CREATE OR REPLACE FUNCTION {{ m.q("checkout_user_email") }}(p_user_id UUID)
RETURNS TEXT
LANGUAGE plpgsql STABLE
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_email TEXT;
BEGIN
  IF p_user_id IS NULL THEN
    RAISE EXCEPTION 'p_user_id is required' USING ERRCODE = '22023';
  END IF;
  SELECT u.email INTO v_email FROM users u WHERE u.id = p_user_id;
  RETURN v_email;
END;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_user_email") }}(UUID) IS
  'The email of a user (where Stripe sends the receipt), or NULL for an unknown user. Raises 22023 without an id.';
