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
  v_status TEXT;
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

  -- A concurrent delivery of the same id waits here on the first one's row until it commits, then sees
  -- its final status: each event is processed at most once.
  INSERT INTO webhook_events AS w (stripe_event_id, topic, payload, livemode)
  VALUES (p_event_id, p_topic, p_payload, coalesce((p_payload ->> 'livemode')::boolean, FALSE))
  ON CONFLICT ON CONSTRAINT webhook_events_stripe_event_id_key DO UPDATE
    SET deliveries = w.deliveries + 1, last_delivered_at = now()
  RETURNING w.status INTO v_status;

  IF v_status IN ('processed', 'ignored', 'rejected') THEN
    RETURN QUERY SELECT w.status::text, w.outcome, w.checkout_session_id, TRUE
                   FROM webhook_events w WHERE w.stripe_event_id = p_event_id;
    RETURN;
  END IF;
  RETURN QUERY SELECT r.status, r.outcome, r.checkout_session_id, FALSE
                 FROM process_webhook_event(p_event_id, p_expected_livemode) r;
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
