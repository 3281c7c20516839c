-- The reference's 6-hourly reminder job, as the database sees it: who is due a reminder, and queueing
-- exactly one reminder email per checkout session in the outbox (dedupe key 'reminder:<session id>').
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("checkout_reminder_candidates") }}()
RETURNS TABLE (
  session_id        UUID,
  user_id           UUID,
  email             VARCHAR,
  subscription_plan VARCHAR,
  plan_price        NUMERIC,
  currency          CHAR(3),
  created_at        TIMESTAMP WITH TIME ZONE,
  expires_at        TIMESTAMP WITH TIME ZONE,
  attempts          INTEGER,
  checkout_url      TEXT
)
LANGUAGE sql STABLE
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
  -- The reference's WHERE clause, unchanged (strict bounds: exactly 6 h or 24 h old is not a candidate),
  -- minus sessions already reminded.
  SELECT s.id, s.user_id, s.email, s.subscription_plan, s.plan_price, s.currency, s.created_at, s.expires_at,
         s.attempts, s.checkout_url
    FROM payment_checkout_sessions s
   WHERE s.status = 'pending'
     AND s.created_at < now() - INTERVAL '6 hours'
     AND s.created_at > now() - INTERVAL '24 hours'
     AND s.attempts < 3
     AND NOT EXISTS (SELECT 1 FROM email_outbox o WHERE o.dedupe_key = 'reminder:' || s.id::text)
   ORDER BY s.created_at, s.id;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_reminder_candidates") }}() IS
  'Pending sessions created 6-24 hours ago with fewer than 3 attempts (the reference''s reminder query) '
  'that have no reminder queued yet.';

CREATE OR REPLACE FUNCTION {{ m.q("queue_checkout_reminders") }}()
RETURNS INTEGER
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_count INTEGER;
BEGIN
  -- The unique dedupe key makes "one reminder per session" a database rule: two overlapping or retried
  -- runs insert each reminder once between them.
  INSERT INTO email_outbox (kind, recipient, dedupe_key, user_id, checkout_session_id, context)
  SELECT 'reminder', c.email, 'reminder:' || c.session_id::text, c.user_id, c.session_id,
         jsonb_build_object(
           'subscription_plan', c.subscription_plan,
           'plan_price', c.plan_price::text,
           'currency', c.currency,
           'created_at', c.created_at,
           'expires_at', c.expires_at,
           'checkout_url', c.checkout_url)
    FROM checkout_reminder_candidates() c
  ON CONFLICT (dedupe_key) DO NOTHING;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END;
$$;

COMMENT ON FUNCTION {{ m.q("queue_checkout_reminders") }}() IS
  'Queues one reminder email (kind reminder, dedupe key reminder:<session id>) per reminder candidate; '
  'returns how many were queued now. Never queues a second reminder for a session.';
