-- depends: process_webhook_event, webhook_signature
-- The webhook's one call per delivery: check Stripe's signature over the raw body, record the event, and
-- process it unless it already was. The signature is checked here too, not only by the service: a database
-- credential alone cannot record an event Stripe did not sign. A signed event that cannot be processed as
-- sent is recorded as rejected, with its raw body and the reason, and answered like any other (Stripe stops
-- retrying; a person looks at error_logs / `runner report recent_webhooks`).
{% import "macros/common.sql" as m %}
-- The signatures before the database checked signatures (a payload without its proof): gone, so no grant
-- can reach them.
DROP FUNCTION IF EXISTS {{ m.q("record_webhook_event") }}(TEXT, TEXT, JSONB, BOOLEAN);
DROP FUNCTION IF EXISTS {{ m.q("fail_webhook_event") }}(TEXT, TEXT, JSONB, TEXT);

CREATE OR REPLACE FUNCTION {{ m.q("record_webhook_event") }}(
  p_body              TEXT,
  p_signature         TEXT,
  p_expected_livemode BOOLEAN,
  p_tolerance         INTEGER DEFAULT 300
)
RETURNS TABLE (event_id TEXT, status TEXT, outcome TEXT, checkout_session_id UUID, duplicate BOOLEAN)
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_problem TEXT;
  v_payload JSONB;
  v_id      TEXT;
  v_topic   TEXT;
  v_event   RECORD;
  v_known   BOOLEAN;
  v_result  RECORD;
BEGIN
  IF p_expected_livemode IS NULL THEN
    RAISE EXCEPTION 'p_expected_livemode is required' USING ERRCODE = '22023';
  END IF;
  v_problem := stripe_signature_problem(p_body, p_signature, p_tolerance);
  IF v_problem IS NOT NULL THEN
    RAISE EXCEPTION 'invalid Stripe-Signature: %', v_problem USING ERRCODE = '28000';
  END IF;

  BEGIN
    v_payload := p_body::jsonb;
  EXCEPTION WHEN data_exception OR program_limit_exceeded THEN  -- \u0000, 1e999999, nested too deeply, ...
    v_problem := 'the body is not JSON PostgreSQL can store: ' || SQLERRM;
  END;
  v_problem := coalesce(v_problem, webhook_event_problem(v_payload));
  -- A body without a usable id is keyed by its digest: Stripe's retries of it are duplicates of one row.
  IF jsonb_typeof(v_payload -> 'id') = 'string' AND length(v_payload ->> 'id') BETWEEN 1 AND 255
     AND v_payload ->> 'id' !~ '[[:cntrl:]]' THEN
    v_id := v_payload ->> 'id';
  ELSE
    v_id := 'unparsed_' || encode(sha256(convert_to(p_body, 'UTF8')), 'hex');
  END IF;
  IF jsonb_typeof(v_payload -> 'type') = 'string' AND length(v_payload ->> 'type') BETWEEN 1 AND 255
     AND v_payload ->> 'type' !~ '[[:cntrl:]]' THEN
    v_topic := v_payload ->> 'type';
  ELSE
    v_topic := '(unparsed)';
  END IF;
  event_id := v_id;

  -- A concurrent delivery of the same id waits here until the first one commits, then sees its row (each
  -- statement of a READ COMMITTED transaction reads what had committed when it started): each event is
  -- processed at most once. The lock, not the row, serialises them, so a new event's row is written once,
  -- with its outcome, rather than inserted as 'received' and updated.
  {{ m.lock_webhook_event("v_id") }};
  SELECT w.id, w.status, w.outcome, w.checkout_session_id INTO v_event
    FROM webhook_events w WHERE w.stripe_event_id = v_id FOR UPDATE;
  v_known := FOUND;

  IF v_known AND v_event.status IN ('processed', 'ignored', 'rejected') THEN
    UPDATE webhook_events w SET deliveries = w.deliveries + 1, last_delivered_at = now() WHERE w.id = v_event.id;
    status := v_event.status;
    outcome := v_event.outcome;
    checkout_session_id := v_event.checkout_session_id;
    duplicate := TRUE;
    RETURN NEXT;
    RETURN;
  END IF;

  IF v_problem IS NOT NULL THEN
    SELECT 'rejected' AS status, 'rejected: ' || v_problem AS outcome, NULL::uuid AS checkout_session_id,
           v_problem AS error
      INTO v_result;
    PERFORM log_error('webhook', format('Stripe event %s (%s) rejected: %s', v_id, v_topic, v_problem),
                      jsonb_build_object('stripe_event_id', v_id, 'topic', v_topic));
  ELSE
    v_result := apply_webhook_event(v_id, v_topic, v_payload, p_expected_livemode);
  END IF;
  IF v_known THEN  -- received or failed before: this delivery processes it
    UPDATE webhook_events w
       SET status = v_result.status, outcome = v_result.outcome, error = v_result.error, processed_at = now(),
           checkout_session_id = v_result.checkout_session_id, deliveries = w.deliveries + 1,
           last_delivered_at = now(), payload = coalesce(v_payload, 'null'::jsonb),
           raw_body = CASE WHEN v_result.status = 'rejected' THEN p_body END
     WHERE w.id = v_event.id;
  ELSE
    INSERT INTO webhook_events (stripe_event_id, topic, payload, livemode, status, outcome, error, processed_at,
                                checkout_session_id, raw_body)
    VALUES (v_id, v_topic, coalesce(v_payload, 'null'::jsonb),
            coalesce(CASE WHEN jsonb_typeof(v_payload -> 'livemode') = 'boolean'
                          THEN (v_payload -> 'livemode')::boolean END, FALSE),
            v_result.status, v_result.outcome, v_result.error, now(), v_result.checkout_session_id,
            CASE WHEN v_result.status = 'rejected' THEN p_body END);
  END IF;
  -- RETURN NEXT of the output columns, not RETURN QUERY: no query to start for one row.
  status := v_result.status;
  outcome := v_result.outcome;
  checkout_session_id := v_result.checkout_session_id;
  duplicate := FALSE;
  RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION {{ m.q("record_webhook_event") }}(TEXT, TEXT, BOOLEAN, INTEGER) IS
  'Checks the Stripe-Signature header over the raw body against webhook_secrets (SQLSTATE 28000 when it does '
  'not sign it), records the event (counting redeliveries) and processes it once: a duplicate, even one '
  'delivered concurrently, returns the first processing''s result with duplicate = true and changes nothing. '
  'A signed event that cannot be processed as sent is stored as rejected with its raw body and the reason.';

CREATE OR REPLACE FUNCTION {{ m.q("fail_webhook_event") }}(
  p_body      TEXT,
  p_signature TEXT,
  p_error     TEXT,
  p_tolerance INTEGER DEFAULT 300
)
RETURNS VOID
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_problem TEXT := stripe_signature_problem(p_body, p_signature, p_tolerance);
  v_payload JSONB;
BEGIN
  IF v_problem IS NOT NULL THEN
    RAISE EXCEPTION 'invalid Stripe-Signature: %', v_problem USING ERRCODE = '28000';
  END IF;
  BEGIN
    v_payload := p_body::jsonb;
  EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
    v_payload := NULL;
  END;
  IF webhook_event_problem(v_payload) IS NOT NULL OR v_payload IS NULL THEN
    -- record_webhook_event stores such an event as rejected; a failure on the way there is only logged.
    PERFORM log_error('webhook', format('a Stripe delivery failed before it was stored: %s', p_error),
                      '{}'::jsonb);
    RETURN;
  END IF;
  {{ m.lock_webhook_event("v_payload ->> 'id'") }};
  INSERT INTO webhook_events AS w (stripe_event_id, topic, payload, livemode, status, error)
  VALUES (v_payload ->> 'id', v_payload ->> 'type', v_payload, (v_payload -> 'livemode')::boolean, 'failed',
          p_error)
  ON CONFLICT ON CONSTRAINT webhook_events_stripe_event_id_key DO UPDATE
    SET status = 'failed', error = p_error, deliveries = w.deliveries + 1, last_delivered_at = now()
  WHERE w.status IN ('received', 'failed');
  PERFORM log_error('webhook', format('Stripe event %s (%s) failed: %s', v_payload ->> 'id', v_payload ->> 'type',
                                      p_error),
                    jsonb_build_object('stripe_event_id', v_payload ->> 'id', 'topic', v_payload ->> 'type'));
END;
$$;

COMMENT ON FUNCTION {{ m.q("fail_webhook_event") }}(TEXT, TEXT, TEXT, INTEGER) IS
  'Records that processing a signed event failed unexpectedly (status failed, error_logs); Stripe''s '
  'redelivery processes it again. Checks the signature like record_webhook_event; never touches an event that '
  'was already processed.';
