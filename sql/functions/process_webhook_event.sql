-- depends: complete_checkout_session, webhook_signature, stripe_session_history, stripe_amount
-- What a Stripe checkout event does to its checkout session. apply_webhook_event decides and does it;
-- record_webhook_event (a new delivery) and process_webhook_event (`runner webhook replay`, a stored event
-- again) call it under the event's lock and write the event's row once. Safe to run twice on one event.
{% import "macros/common.sql" as m %}

CREATE OR REPLACE FUNCTION {{ m.q("apply_webhook_event") }}(
  p_event_id          TEXT,
  p_topic             TEXT,
  p_payload           JSONB,
  p_expected_livemode BOOLEAN,
  OUT status              TEXT,
  OUT outcome             TEXT,
  OUT checkout_session_id UUID,
  OUT error               TEXT
)
LANGUAGE plpgsql
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_obj      JSONB := p_payload -> 'data' -> 'object';
  v_row      payment_checkout_sessions%ROWTYPE;
  v_ref      TEXT;
  v_status   TEXT := 'processed';
  v_outcome  TEXT;
  v_problem  TEXT;
  v_completing BOOLEAN;
  v_currency TEXT;
  v_earlier  BOOLEAN := FALSE;
BEGIN
  IF p_topic NOT IN ('checkout.session.completed', 'checkout.session.async_payment_succeeded',
                     'checkout.session.async_payment_failed', 'checkout.session.expired') THEN
    v_status := 'ignored';
    v_outcome := 'event type not handled';
  ELSIF jsonb_typeof(v_obj) IS DISTINCT FROM 'object' OR v_obj ->> 'object' IS DISTINCT FROM 'checkout.session' THEN
    v_problem := 'data.object is not a checkout.session';
  ELSIF (CASE WHEN jsonb_typeof(p_payload -> 'livemode') = 'boolean' THEN (p_payload -> 'livemode')::boolean END)
        IS DISTINCT FROM p_expected_livemode THEN
    v_problem := format('event livemode is %s, this service runs with livemode %s',
                        coalesce(p_payload ->> 'livemode', 'missing'), p_expected_livemode);
  END IF;

  IF v_status = 'processed' AND v_problem IS NULL THEN
    -- Our row: the metadata we set, else client_reference_id, else the Stripe session id (current, else
    -- one the row had before: payment_checkout_stripe_sessions).
    v_ref := coalesce(v_obj -> 'metadata' ->> 'checkoutSessionId', v_obj ->> 'client_reference_id');
    IF v_ref ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
      SELECT * INTO v_row FROM payment_checkout_sessions s WHERE s.id = v_ref::uuid FOR UPDATE;
    END IF;
    IF v_row.id IS NULL AND v_obj ->> 'id' IS NOT NULL THEN
      SELECT * INTO v_row FROM payment_checkout_sessions s WHERE s.stripe_session_id = v_obj ->> 'id' FOR UPDATE;
      IF v_row.id IS NULL THEN
        SELECT s.* INTO v_row
          FROM payment_checkout_stripe_sessions h
          JOIN payment_checkout_sessions s ON s.id = h.checkout_session_id
         WHERE h.stripe_session_id = v_obj ->> 'id'
           FOR UPDATE OF s;
      END IF;
    END IF;
    v_completing := p_topic = 'checkout.session.async_payment_succeeded'
      OR (p_topic = 'checkout.session.completed'
          AND v_obj ->> 'payment_status' IN ('paid', 'no_payment_required'));
    v_currency := lower(v_row.currency);  -- a plain expression: no query to start when the row has it
    IF v_currency IS NULL AND v_row.id IS NOT NULL THEN
      SELECT lower(p.currency) INTO v_currency FROM subscription_plans p WHERE p.code = v_row.subscription_plan;
    END IF;

    IF v_row.stripe_session_id IS DISTINCT FROM v_obj ->> 'id' AND v_row.stripe_session_id IS NOT NULL THEN
      v_earlier := EXISTS (SELECT 1 FROM payment_checkout_stripe_sessions h
                            WHERE h.stripe_session_id = v_obj ->> 'id' AND h.checkout_session_id = v_row.id);
    END IF;

    IF v_row.id IS NULL THEN
      v_problem := format('no checkout session matches (checkoutSessionId %s, Stripe session %s)',
                          coalesce(v_ref, 'missing'), coalesce(v_obj ->> 'id', 'missing'));
    ELSIF v_row.stripe_session_id IS DISTINCT FROM v_obj ->> 'id' AND v_row.stripe_session_id IS NOT NULL
          AND NOT (v_completing AND v_earlier AND v_row.status <> 'completed') THEN
      IF v_completing AND v_earlier THEN
        -- Paid twice: once through the current Stripe session, once through one it replaced.
        v_problem := format('checkout session %s was already paid through Stripe session %s; this payment '
                            'through its earlier Stripe session %s needs a refund',
                            v_row.id, v_row.stripe_session_id, v_obj ->> 'id');
      ELSIF v_completing THEN
        v_problem := format('Stripe session %s is not the one linked to checkout session %s (%s)',
                            v_obj ->> 'id', v_row.id, v_row.stripe_session_id);
      ELSE
        -- The expiry or failure of a Stripe session this row has since replaced: old news.
        v_status := 'ignored';
        v_outcome := 'event for a replaced Stripe session';
      END IF;
    ELSIF v_obj -> 'metadata' ->> 'userId' IS DISTINCT FROM v_row.user_id::text
          AND v_obj -> 'metadata' ->> 'userId' IS NOT NULL THEN
      v_problem := format('metadata userId %s is not the session''s user', v_obj -> 'metadata' ->> 'userId');
    ELSIF v_completing AND lower(v_obj ->> 'currency') IS DISTINCT FROM v_currency THEN
      v_problem := format('currency %s, expected %s', coalesce(v_obj ->> 'currency', 'missing'), v_currency);
    ELSIF v_completing AND v_obj -> 'amount_total' IS DISTINCT FROM  -- a JSON number: "2999" is not 2999
                           to_jsonb(stripe_amount_minor_units(v_row.plan_price, v_currency)) THEN
      v_problem := format('amount_total %s, expected %s (%s %s)', coalesce(v_obj ->> 'amount_total', 'missing'),
                          stripe_amount_minor_units(v_row.plan_price, v_currency), v_row.plan_price, v_currency);
    END IF;
  END IF;

  IF v_problem IS NOT NULL THEN
    v_status := 'rejected';
    v_outcome := 'rejected: ' || v_problem;
    PERFORM log_error('webhook',
      format('Stripe event %s (%s) rejected: %s', p_event_id, p_topic, v_problem),
      jsonb_build_object('stripe_event_id', p_event_id, 'topic', p_topic,
                         'checkout_session_id', v_row.id, 'stripe_session_id', v_obj ->> 'id',
                         'amount_total', v_obj -> 'amount_total', 'currency', v_obj -> 'currency',
                         'livemode', p_payload -> 'livemode'));
  ELSIF v_status = 'processed' THEN
    IF v_completing THEN
      IF v_earlier THEN
        -- Paid through a Stripe session the row had replaced (the money wins): that one becomes current
        -- again, and the one it replaced is kept in payment_checkout_stripe_sessions.
        UPDATE payment_checkout_sessions s SET stripe_session_id = v_obj ->> 'id' WHERE s.id = v_row.id;
      END IF;
      IF complete_checkout_session(v_row.id, v_obj ->> 'id', v_obj ->> 'customer') THEN
        v_outcome := 'completed';
        PERFORM enqueue_email('verification', v_row.email, 'verification:' || v_row.id, v_row.user_id, v_row.id,
                              jsonb_build_object('plan', v_row.subscription_plan, 'amount', v_row.plan_price,
                                                 'currency', v_currency));
      ELSE
        v_outcome := 'already completed';
      END IF;
    ELSIF p_topic = 'checkout.session.completed' THEN
      v_outcome := 'awaiting payment (' || coalesce(v_obj ->> 'payment_status', 'no payment_status') || ')';
    ELSIF v_row.status <> 'pending' THEN
      v_outcome := 'unchanged: session is ' || v_row.status;
    ELSE
      UPDATE payment_checkout_sessions s
         SET status = CASE WHEN p_topic = 'checkout.session.expired' THEN 'expired' ELSE 'failed' END
       WHERE s.id = v_row.id
      RETURNING s.status INTO v_outcome;
    END IF;
  END IF;

  status := v_status;
  outcome := v_outcome;
  checkout_session_id := v_row.id;
  error := v_problem;
END;
$$;

COMMENT ON FUNCTION {{ m.q("apply_webhook_event") }}(TEXT, TEXT, JSONB, BOOLEAN) IS
  'Applies a Stripe checkout event to its session, without recording the event (its callers do, under the '
  'event''s lock): completed (paid / no_payment_required) and async_payment_succeeded complete it, activate '
  'the subscription and queue the verification email; async_payment_failed fails and expired expires a '
  'pending session. A completion whose Stripe session, user, currency, amount or livemode does not match is '
  'rejected (error_logs, category webhook) and changes nothing. Returns status processed | ignored | rejected, '
  'what was done, the session, and the reason of a rejection.';

CREATE OR REPLACE FUNCTION {{ m.q("process_webhook_event") }}(
  p_event_id          TEXT,
  p_expected_livemode BOOLEAN
)
RETURNS TABLE (status TEXT, outcome TEXT, checkout_session_id UUID)
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_event webhook_events%ROWTYPE;
  v_result RECORD;
  v_problem TEXT;
BEGIN
  {{ m.lock_webhook_event("p_event_id") }};
  SELECT * INTO v_event FROM webhook_events w WHERE w.stripe_event_id = p_event_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unknown webhook event: %', coalesce(quote_literal(left(p_event_id, 80)), 'NULL')
      USING ERRCODE = 'P0002';
  END IF;
  -- A stored event is checked as strictly as a new delivery (one stored before that check may not pass it).
  v_problem := webhook_event_problem(v_event.payload);
  IF v_problem IS NOT NULL THEN
    SELECT 'rejected' AS status, 'rejected: ' || v_problem AS outcome, NULL::uuid AS checkout_session_id,
           v_problem AS error
      INTO v_result;
  ELSE
    v_result := apply_webhook_event(v_event.stripe_event_id, v_event.topic, v_event.payload, p_expected_livemode);
  END IF;
  UPDATE webhook_events w
     SET status = v_result.status, outcome = v_result.outcome, error = v_result.error, processed_at = now(),
         checkout_session_id = v_result.checkout_session_id
   WHERE w.id = v_event.id;
  status := v_result.status;
  outcome := v_result.outcome;
  checkout_session_id := v_result.checkout_session_id;
  RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION {{ m.q("process_webhook_event") }}(TEXT, BOOLEAN) IS
  'Applies a stored Stripe event to its checkout session again (`runner webhook replay`) and records the '
  'result on the event: idempotent, since completing twice changes nothing (see apply_webhook_event). '
  'Returns status processed | ignored | rejected and what was done.';
