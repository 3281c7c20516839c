-- depends: process_webhook_event
-- The webhook's one call per verified delivery: record the event, and process it unless it already was.
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("record_webhook_event") }}(
  p_event_id          TEXT,
  p_topic             TEXT,
  p_payload           JSONB,
  p_expected_livemode BOOLEAN
)
RETURNS TABLE (status TEXT, outcome TEXT, checkout_session_id UUID, duplicate BOOLEAN)
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_event  RECORD;
  v_known  BOOLEAN;
  v_result RECORD;
BEGIN
  IF p_event_id IS NULL OR btrim(p_event_id) = '' OR length(p_event_id) > 255 THEN
    RAISE EXCEPTION 'p_event_id is required (at most 255 characters)' USING ERRCODE = '22023';
  END IF;
  IF p_topic IS NULL OR btrim(p_topic) = '' OR length(p_topic) > 255 THEN
    RAISE EXCEPTION 'p_topic is required (at most 255 characters)' USING ERRCODE = '22023';
  END IF;
  IF jsonb_typeof(p_payload) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'p_payload must be a JSON object' USING ERRCODE = '22023';
  END IF;

  -- A concurrent delivery of the same id waits here until the first one commits, then sees its row (each
  -- statement of a READ COMMITTED transaction reads what had committed when it started): each event is
  -- processed at most once. The lock, not the row, serialises them, so a new event's row is written once,
  -- with its outcome, rather than inserted as 'received' and updated.
  {{ m.lock_webhook_event("p_event_id") }};
  SELECT w.id, w.status, w.outcome, w.checkout_session_id INTO v_event
    FROM webhook_events w WHERE w.stripe_event_id = p_event_id FOR UPDATE;
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

  v_result := apply_webhook_event(p_event_id, p_topic, p_payload, p_expected_livemode);
  IF v_known THEN  -- received or failed before: this delivery processes it
    UPDATE webhook_events w
       SET status = v_result.status, outcome = v_result.outcome, error = v_result.error, processed_at = now(),
           checkout_session_id = v_result.checkout_session_id, deliveries = w.deliveries + 1,
           last_delivered_at = now()
     WHERE w.id = v_event.id;
  ELSE
    INSERT INTO webhook_events (stripe_event_id, topic, payload, livemode, status, outcome, error, processed_at,
                                checkout_session_id)
    VALUES (p_event_id, p_topic, p_payload, coalesce((p_payload ->> 'livemode')::boolean, FALSE),
            v_result.status, v_result.outcome, v_result.error, now(), v_result.checkout_session_id);
  END IF;
  -- RETURN NEXT of the output columns, not RETURN QUERY: no query to start for one row.
  status := v_result.status;
  outcome := v_result.outcome;
  checkout_session_id := v_result.checkout_session_id;
  duplicate := FALSE;
  RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION {{ m.q("record_webhook_event") }}(TEXT, TEXT, JSONB, BOOLEAN) IS
  'Records a verified Stripe event (counting redeliveries) and processes it once: a duplicate, even one '
  'delivered concurrently, returns the first processing''s result with duplicate = true and changes nothing.';

CREATE OR REPLACE FUNCTION {{ m.q("fail_webhook_event") }}(
  p_event_id TEXT,
  p_topic    TEXT,
  p_payload  JSONB,
  p_error    TEXT
)
RETURNS VOID
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
BEGIN
  {{ m.lock_webhook_event("p_event_id") }};
  INSERT INTO webhook_events AS w (stripe_event_id, topic, payload, livemode, status, error)
  VALUES (p_event_id, p_topic, p_payload, coalesce((p_payload ->> 'livemode')::boolean, FALSE), 'failed', p_error)
  ON CONFLICT ON CONSTRAINT webhook_events_stripe_event_id_key DO UPDATE
    SET status = 'failed', error = p_error, deliveries = w.deliveries + 1, last_delivered_at = now()
  WHERE w.status IN ('received', 'failed');
  PERFORM log_error('webhook', format('Stripe event %s (%s) failed: %s', p_event_id, p_topic, p_error),
                    jsonb_build_object('stripe_event_id', p_event_id, 'topic', p_topic));
END;
$$;

COMMENT ON FUNCTION {{ m.q("fail_webhook_event") }}(TEXT, TEXT, JSONB, TEXT) IS
  'Records that processing an event failed unexpectedly (status failed, error_logs); Stripe''s redelivery '
  'processes it again. Never touches an event that was already processed.';
