-- Delivering the email outbox: claim one due email (skipping rows another sender holds), then record how
-- the attempt went. The runner calls both in one transaction around the SMTP send (runner/mail.py).
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("claim_due_email") }}(p_as_of TIMESTAMP WITH TIME ZONE DEFAULT now())
RETURNS TABLE (
  id                  BIGINT,
  kind                VARCHAR,
  recipient           VARCHAR,
  dedupe_key          VARCHAR,
  user_id             UUID,
  checkout_session_id UUID,
  context             JSONB,
  attempts            INTEGER,
  created_at          TIMESTAMP WITH TIME ZONE,
  session_status      VARCHAR,
  subscription_plan   VARCHAR,
  plan_price          NUMERIC,
  currency            CHAR(3),
  checkout_url        TEXT,
  session_expires_at  TIMESTAMP WITH TIME ZONE,
  completed_at        TIMESTAMP WITH TIME ZONE
)
LANGUAGE sql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
  -- The session as it is now (not as it was when the email was queued): a reminder for a checkout
  -- completed in the meantime must not go out. The row lock lasts until the caller's transaction ends.
  SELECT o.id, o.kind, o.recipient, o.dedupe_key, o.user_id, o.checkout_session_id, o.context, o.attempts,
         o.created_at, s.status, s.subscription_plan, s.plan_price, s.currency, s.checkout_url, s.expires_at,
         s.completed_at
    FROM email_outbox o
    LEFT JOIN payment_checkout_sessions s ON s.id = o.checkout_session_id
   WHERE o.status = 'queued' AND o.next_attempt_at <= p_as_of
   ORDER BY o.next_attempt_at, o.id
   LIMIT 1
     FOR UPDATE OF o SKIP LOCKED;
$$;

COMMENT ON FUNCTION {{ m.q("claim_due_email") }}(TIMESTAMP WITH TIME ZONE) IS
  'Locks and returns the next queued email due at p_as_of (none when every due row is held by another '
  'sender), with the current state of its checkout session.';

CREATE OR REPLACE FUNCTION {{ m.q("record_email_attempt") }}(
  p_id            BIGINT,
  p_outcome       TEXT,
  p_error         TEXT DEFAULT NULL,
  p_max_attempts  INTEGER DEFAULT 5,
  p_retry_seconds INTEGER DEFAULT 300
)
RETURNS TEXT
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_status TEXT;
BEGIN
  IF p_outcome IS NULL OR p_outcome NOT IN ('sent', 'retry', 'permanent', 'canceled') THEN
    RAISE EXCEPTION 'p_outcome must be sent, retry, permanent or canceled, got %',
      coalesce(quote_literal(p_outcome), 'NULL') USING ERRCODE = '22023';
  END IF;
  IF p_max_attempts IS NULL OR p_max_attempts < 1 THEN
    RAISE EXCEPTION 'p_max_attempts must be at least 1, got %', p_max_attempts USING ERRCODE = '22023';
  END IF;
  IF p_retry_seconds IS NULL OR p_retry_seconds < 0 THEN
    RAISE EXCEPTION 'p_retry_seconds must be 0 or more, got %', p_retry_seconds USING ERRCODE = '22023';
  END IF;

  UPDATE email_outbox o
     SET attempts = o.attempts + CASE WHEN p_outcome = 'canceled' THEN 0 ELSE 1 END,
         status = CASE
                    WHEN p_outcome = 'sent' THEN 'sent'
                    WHEN p_outcome = 'canceled' THEN 'canceled'
                    WHEN p_outcome = 'permanent' OR o.attempts + 1 >= p_max_attempts THEN 'failed'
                    ELSE 'queued'
                  END,
         sent_at = CASE WHEN p_outcome = 'sent' THEN now() END,
         last_error = CASE WHEN p_outcome = 'sent' THEN NULL ELSE left(p_error, 2000) END,
         -- Exponential backoff (p_retry_seconds, doubled per failed attempt, at most a day).
         next_attempt_at = CASE
                             WHEN p_outcome = 'retry'
                             THEN now() + make_interval(secs => least(p_retry_seconds * 2.0 ^ o.attempts, 86400))
                             ELSE o.next_attempt_at
                           END
   WHERE o.id = p_id AND o.status = 'queued'
  RETURNING o.status INTO v_status;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'email % is not queued', p_id USING ERRCODE = 'P0002';
  END IF;
  RETURN v_status;
END;
$$;

COMMENT ON FUNCTION {{ m.q("record_email_attempt") }}(BIGINT, TEXT, TEXT, INTEGER, INTEGER) IS
  'Records one delivery attempt of a queued email: sent; retry (queued again with backoff, failed after '
  'p_max_attempts); permanent (failed now); canceled (no longer relevant). Returns the new status.';

CREATE OR REPLACE FUNCTION {{ m.q("count_due_emails") }}()
RETURNS BIGINT
LANGUAGE sql STABLE
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
  SELECT count(*) FROM email_outbox WHERE status = 'queued' AND next_attempt_at <= now();
$$;

COMMENT ON FUNCTION {{ m.q("count_due_emails") }}() IS 'How many queued emails are due now (what send-email would try).';
